"""KB-anchored recalibration: align the shipped confidence models to the knowledge base in use.

The confidence models (confidence.toml) were fitted on our own knowledge base, whose entries
carry 4 ja + 2 en questions. On a KB with fewer wordings per entry every "best match over an
entry's questions" feature is lower, so right answers land under the fixed thresholds while
the ranking barely changes. So whenever an index is built (a city's FAQ, after each staff
edit, or the bot's command utterances), it is probed with questions made from itself:

  in scope    an entry's own question, asked with that question left out of the index
              (leaveout.py: exact for the per-question signals and that entry's BM25 bag).
              An entry with ONE question (localgovFAQ) is probed the same way, so that its
              question must find it through its answer alone (the answer probes the question,
              rather than a question generated from the answer: no text to encode).
  near miss   an entry's question with the whole entry left out: whatever comes first is wrong
  elsewhere   a fixed city-independent set (oos_probes.toml: greetings, chit-chat, services no
              migration FAQ covers, ja and en) plus the caller's `extra_negatives`

Per stage of the cascade, the shipped model's logit is shifted so that the typical confidence
of this index's right in-scope probes moves towards what the same probes give on our own KB
(REFERENCE), by SHIFT_SHARE of the gap: on our KB thinned to 2 ja + 1 en questions per entry,
the real right answers' median logit fell by ~0.6 of what the probes' fell (probes lose one of
few wordings, real questions none), and at most MAX_SHIFT. The shift is then held back until
this index's own near misses and elsewhere probes are answered at most NEAR_MARGIN /
ELSEWHERE_MARGIN more often than the unshifted model answers them. Thresholds and the
cascade's cut-offs stay the shipped ones, applied to the shifted model; config.toml's
overrides still win. The query vectors of the in-scope and near-miss
probes are the stored question embeddings (a question is encoded as a query is), so probing
encodes only the fixed set and the USE re-encodes of the near-miss feature. Deterministic: the
sample and every number depend only on the index's texts. The result is cached on disk next to
the embeddings (keyed by every text it depends on); answering costs nothing more.

    cal = calibrate_for(retriever, extra_negatives=["..."], name="commands")
    Cascade(retriever, calibration=cal)
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import tempfile
import time
import tomllib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .confidence import MODELS_FILE, ConfidenceModel, config_name, model_for_models
from .embcache import embed_cached
from .leaveout import LeaveOut
from .retriever import Query, Retriever
from .values import Document

log = logging.getLogger(__name__)

PROBES_FILE = Path(__file__).with_name("oos_probes.toml")
# Part of the on-disk cache key: bump when the probes or the placement change.
VERSION = "selfcal-6"
_CODE_FILES = ("selfcal.py", "leaveout.py", "retriever.py", "features.py", "fusion.py")
# At most this many entries are probed (sampled by a hash of their id, so the same KB always
# gives the same sample): localgovFAQ's 1,786 entries would otherwise take ~20 s.
MAX_ENTRIES = 160
IN_SCOPE_PER_ENTRY = 2  # leave-one-question-out probes per entry
# The median logit of the right in-scope probes of our own KB (faq/) under the shipped models,
# per dense configuration (the "right_median" of calibrate_for(...).report on faq/; recompute
# after refitting confidence.toml).
REFERENCE: Mapping[str, float] = {"lexical": 2.2, "use": 2.67, "e5": 2.45, "e5+use": 2.45}
# Chosen on our KB and a copy thinned to 2 ja + 1 en questions per entry (bench/README.md),
# never on another city's queries.
SHIFT_SHARE = 0.6
# At most this (logit units: a borderline 0.76 becomes 0.82). On the 2+1 copy of our KB the
# guarded shifts of 0.15 (USE) and 0.37 (e5 + USE) kept wrong answers at 0.030 of the 568
# queries, and unguarded ones (0.50, 0.42) let them reach 0.044: real off-topic questions do
# not lose confidence on a thinner KB as the right answers do, so every shift admits some.
# (Set after the first run on the unseen city had MAX_SHIFT 1.5 and shifted 0.72: wrong 0.060.)
MAX_SHIFT = 0.35
NEAR_MARGIN = 0.03  # near misses may be answered this much more often than unshifted
ELSEWHERE_MARGIN = 0.02
MIN_RIGHT_PROBES = 8  # fewer right probes: no shift (a median of three says nothing)
Array = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ProbeSet:
    texts: list[str]
    kinds: list[str]  # "in", "near", "elsewhere"
    gold: list[str | None]  # the right entry id for "in"
    leaves: list[LeaveOut | None]
    units: list[int | None]  # the question unit whose stored vectors are the query's


@dataclass(frozen=True)
class Calibration:
    """Recalibrated confidence models for one index, by dense configuration name."""

    models: Mapping[str, ConfidenceModel]
    probes: Mapping[str, int] = field(default_factory=dict)  # count per probe kind
    seconds: float = 0.0
    # per configuration: (answered right, wrong, near misses answered, elsewhere answered)
    # on the probes, for logs and bench/README.md
    report: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def model_for(self, models: Sequence[str]) -> ConfidenceModel | None:
        return self.models.get(config_name(models))

    def to_json(self) -> str:
        return json.dumps(
            {
                "models": {k: m.to_dict() for k, m in self.models.items()},
                "probes": dict(self.probes),
                "seconds": self.seconds,
                "report": {k: dict(v) for k, v in self.report.items()},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        raw = json.loads(text)
        return cls(
            {k: ConfidenceModel.from_dict(m) for k, m in raw["models"].items()},
            raw["probes"],
            float(raw["seconds"]),
            raw["report"],
        )


def _cache_key(r: Retriever, extra_negatives: Sequence[str], staged: bool) -> str:
    """Everything the result depends on: the indexed texts, the probes, the shipped models,
    the dense models and this module's version."""
    h = hashlib.blake2b(digest_size=16)
    parts: list[str] = [VERSION, str(staged), *r.models, *r.dense_models]
    for d in r.docs:
        parts += [d.id, *d.questions_ja, *d.questions_en, d.answer_ja, d.answer_en]
    parts += [*fixed_negatives(), *extra_negatives, MODELS_FILE.read_text(encoding="utf-8")]
    # the code that makes the features and the ranking: a change there recalibrates
    here = Path(__file__).parent
    parts += [(here / f).read_text(encoding="utf-8") for f in _CODE_FILES]
    for part in parts:
        h.update(part.encode("utf-8") + b"\x00")
    return h.hexdigest()


def _cached(path: Path | None) -> Calibration | None:
    if path is None or not path.exists():
        return None
    try:
        return Calibration.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("faq.retrieval: ignoring unreadable calibration %s (%s)", path, exc)
        return None


def _store(path: Path | None, name: str, cal: Calibration) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    for old in path.parent.glob(f"{name}-*.json"):
        old.unlink(missing_ok=True)  # one per index kind: edits must not pile files up
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(cal.to_json())
    os.replace(tmp, path)


@cache
def fixed_negatives() -> tuple[str, ...]:
    raw = tomllib.loads(PROBES_FILE.read_text(encoding="utf-8"))
    return tuple(str(t) for lang in ("ja", "en") for t in raw.get(lang, ()))


def _stable(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def make_probes(r: Retriever, extra_negatives: Sequence[str] = ()) -> ProbeSet:
    texts: list[str] = []
    kinds: list[str] = []
    gold: list[str | None] = []
    leaves: list[LeaveOut | None] = []
    units: list[int | None] = []
    entries = sorted(range(len(r.docs)), key=lambda i: _stable(r.ids[i]))[:MAX_ENTRIES]
    for i in sorted(entries):
        # questions that head no passage first: leaving one of those out is exact (a
        # passage's vector holds its first question, which must then be skipped entirely)
        heads = {r._passage_heads[int(p)] for p in r._passages_of[i]}
        own = sorted(
            (int(u) for u in r._units_of[i]),
            key=lambda u: (r.question_texts[u] in heads, _stable(r.question_texts[u])),
        )
        for u in own[:IN_SCOPE_PER_ENTRY]:
            texts.append(r.question_texts[u])
            kinds.append("in")
            gold.append(r.ids[i])
            leaves.append(LeaveOut(i, u))
            units.append(u)
        if len(r.docs) > 1:
            u = own[-1]
            texts.append(r.question_texts[u])
            kinds.append("near")
            gold.append(None)
            leaves.append(LeaveOut(i))
            units.append(u)
    for t in dict.fromkeys((*fixed_negatives(), *extra_negatives)):
        texts.append(t)
        kinds.append("elsewhere")
        gold.append(None)
        leaves.append(None)
        units.append(None)
    return ProbeSet(texts, kinds, gold, leaves, units)


def _rank_probes(
    r: Retriever, probes: ProbeSet, stages: Sequence[tuple[str, ...]], name: str
) -> dict[tuple[str, ...], tuple[Array, npt.NDArray[np.bool_]]]:
    """Per stage: the shipped model's probability and whether the top entry is right."""
    elsewhere = [t for t, k in zip(probes.texts, probes.kinds, strict=True) if k == "elsewhere"]
    # one folder per index kind: the cache keeps only the texts last asked for
    cache_dir = r.cache_dir / f"probes-{name}" if r.cache_dir is not None else None
    vectors = {
        d.encoder.key: embed_cached(d.encoder, elsewhere, "query", cache_dir) for d in r._dense
    }
    out: dict[tuple[str, ...], tuple[list[float], list[bool]]] = {s: ([], []) for s in stages}
    models = {s: model_for_models(s) for s in stages}
    k = 0
    for text, gold, leave, unit in zip(
        probes.texts, probes.gold, probes.leaves, probes.units, strict=True
    ):
        q: Query = r.prepare(text)
        q.focus = q.text
        for d in r._dense:
            if unit is not None:
                q.vectors[d.encoder.key] = d.questions[unit]
            else:
                q.vectors[d.encoder.key] = vectors[d.encoder.key][k]
        k += unit is None
        for stage in stages:
            model = models[stage]
            ranking = r.rank_stage(q, stage, 2, leave)
            p = model.probability(ranking.features) if model is not None else 0.0
            top = ranking.ranked[0].id if ranking.ranked else None
            out[stage][0].append(p)
            out[stage][1].append(gold is not None and top == gold)
    return {s: (np.asarray(p), np.asarray(right)) for s, (p, right) in out.items()}


def _logit(p: Array) -> Array:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    out: Array = np.log(p / (1 - p))
    return out


def _shift(
    z: Array,
    right: npt.NDArray[np.bool_],
    kinds: npt.NDArray[np.str_],
    reference: float,
    answer: float,
) -> float:
    """How much to add to the shipped model's logit on this index (see the module docstring)."""
    ins = (kinds == "in") & right
    if int(ins.sum()) < MIN_RIGHT_PROBES:
        return 0.0
    shift = float(np.clip(SHIFT_SHARE * (reference - np.median(z[ins])), -MAX_SHIFT, MAX_SHIFT))
    cut = math.log(answer / (1 - answer))
    near, other = kinds == "near", kinds == "elsewhere"

    def answered(sel: npt.NDArray[np.bool_], by: float) -> float:
        return float((z[sel] + by >= cut).mean()) if sel.any() else 0.0

    # this index's own near misses and off-topic probes must not be answered noticeably more
    # often than the shipped decision answers them here
    near_0, other_0 = answered(near, 0.0), answered(other, 0.0)
    while shift > 0 and (
        answered(near, shift) > near_0 + NEAR_MARGIN
        or answered(other, shift) > other_0 + ELSEWHERE_MARGIN
    ):
        shift = max(shift - 0.05, 0.0)
    return shift


def _shifted(model: ConfidenceModel, shift: float) -> ConfidenceModel:
    return replace(model, coef=(*model.coef[:-1], model.coef[-1] + shift))


def calibrate_for(
    retriever: Retriever,
    documents: Sequence[Document] | None = None,
    *,
    extra_negatives: Sequence[str] = (),
    staged: bool = True,
    name: str = "calibration",
) -> Calibration:
    """Recalibrated models for `retriever`'s index (the documents it was built on; passing
    them is only a check). `extra_negatives`: texts that must not be answered from this index
    (for the command index: typical FAQ questions). `staged`: also place the cascade's cut-offs
    (lexical + USE first, e5 only when unsure) as Cascade(staged=True) uses them.

    The result is kept in the retriever's cache_dir as `<name>-<hash>.json` (one file per
    `name`: give each index its own, e.g. "commands"), so a restart on an unchanged index
    reads it back; any change to the texts, the probes or the shipped models recalibrates."""
    t0 = time.perf_counter()
    if documents is not None and [d.id for d in documents] != retriever.ids:
        raise ValueError("calibrate_for: documents are not the ones the retriever indexed")
    path = None
    if retriever.cache_dir is not None:
        key = _cache_key(retriever, extra_negatives, staged)
        path = retriever.cache_dir / f"{name}-{key}.json"
    if (hit := _cached(path)) is not None:
        return hit
    cal = _calibrate(retriever, extra_negatives, staged, name, t0)
    try:
        _store(path, name, cal)
    except OSError as exc:  # a read-only cache costs time at the next start, nothing else
        log.warning("faq.retrieval: calibration not cached (%s)", exc)
    return cal


def _calibrate(
    retriever: Retriever, extra_negatives: Sequence[str], staged: bool, name: str, t0: float
) -> Calibration:
    full = retriever.models
    stages: list[tuple[str, ...]] = [full]
    if staged and "e5" in full and len(full) > 1:
        stages.insert(0, tuple(m for m in full if m != "e5"))
    stages = [s for s in stages if model_for_models(s) is not None]
    if not retriever.docs or not stages:
        return Calibration({}, seconds=time.perf_counter() - t0)
    probes = make_probes(retriever, extra_negatives)
    ranked = _rank_probes(retriever, probes, stages, name)
    kinds = np.asarray(probes.kinds)
    models: dict[str, ConfidenceModel] = {}
    report: dict[str, dict[str, float]] = {}
    for stage in stages:
        shipped = model_for_models(stage)
        assert shipped is not None
        p, right = ranked[stage]
        z = _logit(p)
        config = config_name(stage)
        ref = REFERENCE.get(config, REFERENCE["e5+use"])
        # The cascade's first stage keeps its shipped cut-offs: shifted, it settled more
        # queries without e5, both off-topic ones as answers and rankings e5 would have fixed.
        first_stage = stage != full
        shift = 0.0 if first_stage else _shift(z, right, kinds, ref, shipped.answer)
        models[config] = _shifted(shipped, shift)
        on = z + shift >= math.log(shipped.answer / (1 - shipped.answer))
        ins = kinds == "in"
        report[config] = {
            "shift": shift,
            "right_median": float(np.median(z[ins & right])) if (ins & right).any() else math.nan,
            "right": float((on & right)[ins].mean()) if ins.any() else math.nan,
            "wrong": float((on & ~right)[ins].mean()) if ins.any() else math.nan,
            "near": float(on[kinds == "near"].mean()) if (kinds == "near").any() else math.nan,
            "elsewhere": float(on[kinds == "elsewhere"].mean()),
        }
    counts = {k: int((kinds == k).sum()) for k in ("in", "near", "elsewhere")}
    cal = Calibration(models, counts, time.perf_counter() - t0, report)
    log.info(
        "faq.retrieval: calibrated on %d probes of this index in %.2fs: %s",
        len(kinds),
        cal.seconds,
        "; ".join(
            f"{n} logit {m['shift']:+.2f}: probes answered right {m['right']:.2f}, wrong "
            f"{m['wrong']:.2f}, near misses {m['near']:.2f}, elsewhere {m['elsewhere']:.2f}"
            for n, m in report.items()
        ),
    )
    return cal
