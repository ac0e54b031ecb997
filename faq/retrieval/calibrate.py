"""Fit the confidence models (confidence.py) on a labelled query set, for staff or developers:

    python -m faq.retrieval.calibrate [--kb faq] [--queries bench/data/faq_queries.jsonl] \\
        [--cache var/faq-cache] [--write]

Ranks every query with each dense configuration that can load (lexical, use, e5, e5+use),
then for each one fits an L2 logistic model of "the top entry is right" and picks the answer
threshold (highest P@1 with OOS rejection >= MIN_REJECT and wrong answers <= MAX_WRONG).

Honest figures: stratified k-fold cross-validation over the queries (each fold keeps every
kind's share). Within a fold both the model AND the thresholds come from the other folds only,
the threshold from probabilities that are out-of-fold within those folds too (nested); the
figures are averaged over several shuffles. The stored thresholds are chosen the same way, on
the out-of-fold probabilities of all the queries. The fitted-on-all figures are printed too, as
a secondary row. The cascade's two thresholds (when lexical + USE is sure enough to skip e5)
are chosen on the out-of-fold probabilities. --write stores every model in confidence.toml.
Offline tool: never used by the bot at run time."""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .confidence import (
    ENGLISH_PREFIX,
    MODELS_FILE,
    ConfidenceModel,
    config_name,
    dump_models,
    feature_value,
)
from .retriever import Retriever
from .values import Document

FEATURES = (
    "uncovered_idf", "oov_terms", "top_score", "margin", "coverage", "lex_top_z", "lex_top_raw",
    "fuzzy_top", "agreement", "e5_top_cos", "use_top_cos", "e5_rank_of_top", "use_rank_of_top",
    "lex_rank_of_top", "q_latin_ratio", "q_chars", "query_terms", "oov_share",
    "uncovered_max_idf", "lex_norm", "e5_gap", "use_gap", "e5_qa_top_cos", "use_qa_top_cos",
    "e5_max_cos", "use_max_cos", "q_kana_only", "q_sentences", "soft_uncovered",
    "soft_uncovered_max", "red_delta", "red_sim", "read_cov_q", "read_cov_qa", "kana_read_cov",
)  # fmt: skip
# English queries get their own slope for these (confidence.ENGLISH_PREFIX): +2.5 CV points
# of P@1 for e5 + USE and lexical + USE at the same rejection (bench/README.md).
ENGLISH_FEATURES = tuple(
    ENGLISH_PREFIX + k for k in FEATURES if k not in ("red_delta", "red_sim", "q_latin_ratio")
)
# The answer threshold is chosen on out-of-fold probabilities (cross_validate), so these sit
# only a little inside the targets (rejection >= 0.90, wrong <= 0.05) for the held-out fold.
MAX_WRONG = 0.045
MIN_REJECT = 0.91
MIN_OOS_UNKNOWN = 0.6  # most out-of-scope questions should get "don't know", not choices
L2 = 10.0  # best CV P@1 at >= 0.90 rejection among 0.3, 1, 3, 10, 30 for use and e5+use
FOLDS = 5
SEEDS = (0, 1, 2)
CASCADE_SLACK = 0.005  # the cascade may lose at most this much P@1 / rejection vs full hybrid
Array = npt.NDArray[np.float64]


@dataclass
class Rows:
    """The labelled queries ranked by one configuration."""

    kinds: list[str]
    inscope: npt.NDArray[np.bool_]
    right: npt.NDArray[np.bool_]  # in scope and the top entry is the labelled one
    hit5: npt.NDArray[np.bool_]
    rr: Array  # reciprocal rank of the labelled entry within the top 5 (0 when absent)
    x: Array
    keys: list[str]


def _rows(labels: Sequence[Mapping[str, Any]], rankings: Sequence[Any]) -> Rows:
    present = rankings[0].features
    keys = [k for k in FEATURES if k in present]
    keys += [k for k in ENGLISH_FEATURES if k.removeprefix(ENGLISH_PREFIX) in present]
    ids = [[s.id for s in r.ranked] for r in rankings]
    gold = [q["id"] for q in labels]
    rr = [1.0 / (r.index(g) + 1) if g in r[:5] else 0.0 for r, g in zip(ids, gold, strict=True)]
    x = np.asarray(
        [[feature_value(r.features, k, 0.0) for k in keys] for r in rankings], dtype=np.float64
    )
    varies = x.std(0) > 1e-6  # en_q_kana_only is always 0: no slope to fit, no scale to store
    x, keys = x[:, varies], [k for k, v in zip(keys, varies, strict=True) if v]
    return Rows(
        kinds=[q["kind"] for q in labels],
        inscope=np.array([g is not None for g in gold]),
        right=np.array([g is not None and r[0] == g for r, g in zip(ids, gold, strict=True)]),
        hit5=np.array([g is not None and g in r[:5] for r, g in zip(ids, gold, strict=True)]),
        rr=np.asarray(rr),
        x=x,
        keys=keys,
    )


def fit(x: Array, y: Array, l2: float = L2) -> tuple[Array, Array, Array]:
    """L2-regularised logistic regression by Newton steps (no scikit-learn dependency)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xb = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(xb.shape[1])
    reg = l2 * np.r_[np.ones(len(w) - 1), 0.0]
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        w -= np.linalg.solve(hess, grad)
    return mu, sd, w


def prob(model: tuple[Array, Array, Array], x: Array) -> Array:
    mu, sd, w = model
    out: Array = 1.0 / (1.0 + np.exp(-(np.c_[(x - mu) / sd, np.ones(len(x))] @ w)))
    return out


def metrics(rows: Rows, answered: npt.NDArray[np.bool_], idx: Any = None) -> dict[str, float]:
    """P@1, Hit@5, MRR@5 over in-scope; rejection over OOS; wrong answers over all."""
    sel = np.ones(len(rows.right), bool) if idx is None else idx
    ins, oos = sel & rows.inscope, sel & ~rows.inscope
    nan = float("nan")
    return {
        "n": float(sel.sum()),
        "P@1": float((answered & rows.right)[ins].mean()) if ins.any() else nan,
        "Hit@5": float(rows.hit5[ins].mean()) if ins.any() else nan,
        "MRR@5": float(rows.rr[ins].mean()) if ins.any() else nan,
        "reject": float((~answered)[oos].mean()) if oos.any() else nan,
        "wrong": float((answered & ~rows.right)[sel].mean()),
    }


def pick_answer(rows: Rows, p: Array, idx: npt.NDArray[np.bool_]) -> float:
    best_hi, best_p1 = 0.99, -1.0
    for hi in np.linspace(0.05, 0.99, 189):
        m = metrics(rows, p >= hi, idx)
        if m["wrong"] <= MAX_WRONG and m["reject"] >= MIN_REJECT and m["P@1"] > best_p1:
            best_hi, best_p1 = float(hi), m["P@1"]
    return best_hi


def pick_suggest(rows: Rows, p: Array, hi: float) -> float:
    """Lowest share of in-scope queries told "don't know" while most OOS ones are."""
    best_lo, best = 0.02, 2.0
    for lo in np.linspace(0.02, hi, 100):
        oos_unknown = float((p < lo)[~rows.inscope].mean())
        ins_unknown = float((p < lo)[rows.inscope].mean())
        if oos_unknown >= MIN_OOS_UNKNOWN and ins_unknown < best:
            best_lo, best = float(lo), ins_unknown
    return best_lo


def folds(kinds: Sequence[str], k: int, seed: int) -> npt.NDArray[np.intp]:
    """Stratified by kind: each fold gets its share of every kind (and of the OOS queries)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(len(kinds), dtype=np.intp)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, kind in enumerate(kinds):
        by_kind[kind].append(i)
    for members in by_kind.values():
        order = rng.permutation(members)
        out[order] = np.arange(len(order)) % k
    return out


def out_of_fold(rows: Rows, within: npt.NDArray[np.bool_], seed: int) -> Array:
    """Probability for every query in `within` from a model fitted on the other folds of
    `within` (zeros elsewhere)."""
    idx = np.flatnonzero(within)
    f = folds([rows.kinds[i] for i in idx], FOLDS, seed)
    y = rows.right.astype(np.float64)
    p = np.zeros(len(rows.right))
    for j in range(FOLDS):
        train, test = idx[f != j], idx[f == j]
        p[test] = prob(fit(rows.x[train], y[train]), rows.x[test])
    return p


def cross_validate(rows: Rows, seed: int) -> tuple[Array, Array]:
    """Out-of-fold probability and answer threshold for every query (model and threshold
    both fitted without the query's fold). The threshold is chosen on probabilities that are
    themselves out-of-fold within the training folds (nested): in-sample probabilities are
    over-confident, the more so the more features, and a threshold chosen on them let through
    more out-of-scope queries on the held-out fold than on the folds it was chosen on."""
    f = folds(rows.kinds, FOLDS, seed)
    p, hi = np.zeros(len(f)), np.zeros(len(f))
    y = rows.right.astype(np.float64)
    for j in range(FOLDS):
        train, test = f != j, f == j
        model = fit(rows.x[train], y[train])
        hi[test] = pick_answer(rows, out_of_fold(rows, train, seed + 100), train)
        p[test] = prob(model, rows.x[test])
    return p, hi


def per_kind(rows: Rows, answered: npt.NDArray[np.bool_]) -> dict[str, dict[str, float]]:
    kinds = np.asarray(rows.kinds)
    table = {"ALL": metrics(rows, answered)}
    for kind in sorted(set(rows.kinds)):
        table[kind] = metrics(rows, answered, kinds == kind)
    return table


def mean_tables(tables: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        kind: {m: float(np.mean([t[kind][m] for t in tables])) for m in tables[0][kind]}
        for kind in tables[0]
    }


def print_table(title: str, table: Mapping[str, Mapping[str, float]]) -> None:
    print(f"\n{title}\n| kind | n | P@1 | Hit@5 | MRR@5 | OOS rejected | wrong answers |")
    print("|---|---|---|---|---|---|---|")
    for kind, t in table.items():
        cells = [
            f"{t[k]:.3f}" if t[k] == t[k] else "—"
            for k in ("P@1", "Hit@5", "MRR@5", "reject", "wrong")
        ]
        print(f"| {kind} | {int(t['n'])} | " + " | ".join(cells) + " |")


def short(m: Mapping[str, float]) -> str:
    return " ".join(f"{k} {m[k]:.3f}" for k in ("P@1", "reject", "wrong"))


def cascade_thresholds(
    cheap: Rows,
    full: Rows,
    oof1: Sequence[tuple[Array, Array]],
    oof2: Sequence[tuple[Array, Array]],
) -> tuple[float, float, dict[str, float], dict[str, float], float]:
    """(low, high) for the cheap stage: the fewest queries sent to e5 while P@1 and OOS
    rejection stay within CASCADE_SLACK of the full hybrid, averaged over the shuffles' out-of-
    fold probabilities. Returns low, high, the cascade's and the full hybrid's figures, share."""

    def average(ms: Sequence[Mapping[str, float]]) -> dict[str, float]:
        return {k: float(np.mean([m[k] for m in ms])) for k in ms[0]}

    ref = average([metrics(full, p2 >= hi2) for p2, hi2 in oof2])
    best: tuple[float, float, dict[str, float], dict[str, float], float] = (0, 1.01, ref, ref, 1.0)
    for high in np.linspace(0.3, 1.0, 71):
        for low in np.linspace(0.0, high, 51):
            ms, shares = [], []
            for (p1, _), (p2, hi2) in zip(oof1, oof2, strict=True):
                escalate = (p1 >= low) & (p1 < high)
                answered = np.where(escalate, p2 >= hi2, p1 >= high)
                right = np.where(escalate, full.right, cheap.right)
                mixed = Rows(full.kinds, full.inscope, right, full.hit5, full.rr, full.x, [])
                ms.append(metrics(mixed, answered))
                shares.append(float(escalate.mean()))
            m, share = average(ms), float(np.mean(shares))
            ok = (
                m["P@1"] >= ref["P@1"] - CASCADE_SLACK
                and m["reject"] >= ref["reject"] - CASCADE_SLACK
                and m["wrong"] <= ref["wrong"] + CASCADE_SLACK
            )
            if ok and share < best[4]:
                best = (float(low), float(high), m, ref, share)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--kb", default="faq")
    ap.add_argument("--queries", default="bench/data/faq_queries.jsonl")
    ap.add_argument("--cache", default="var/faq-cache")
    ap.add_argument("--synonyms", default="faq/lexicon/synonyms.toml")
    ap.add_argument("--write", action="store_true", help=f"store the models in {MODELS_FILE.name}")
    args = ap.parse_args()
    from faq.kb import load_kb  # the loader belongs to the bot, not to this package

    docs = [
        Document(
            e.id,
            tuple(e.questions.get("ja", ())),
            tuple(e.questions.get("en", ())),
            e.answer.get("ja", ""),
            e.answer.get("en", ""),
        )
        for e in load_kb(args.kb)
    ]
    retriever = Retriever.build(
        docs, dense="auto", cache_dir=Path(args.cache), synonyms=Path(args.synonyms)
    )
    labels = [
        json.loads(line) for line in Path(args.queries).read_text("utf-8").splitlines() if line
    ]
    configs: list[tuple[str, ...]] = [(), *((m,) for m in retriever.models)]
    if len(retriever.models) > 1:
        configs.append(retriever.models)
    rankings: dict[tuple[str, ...], list[Any]] = {c: [] for c in configs}
    for q in labels:
        # one line per query, as the chat channels and `faq match` pass a message
        prepared = retriever.prepare(q["q"].replace("\r", " ").replace("\n", " "))
        for c in configs:
            rankings[c].append(retriever.rank_stage(prepared, c, 5))

    models: dict[str, ConfidenceModel] = {}
    oof: dict[tuple[str, ...], list[tuple[Array, Array]]] = {}
    rows_of: dict[tuple[str, ...], Rows] = {}
    for c in configs:
        rows = rows_of[c] = _rows(labels, rankings[c])
        tables, summaries = [], []
        for seed in SEEDS:
            p, hi = cross_validate(rows, seed)
            oof.setdefault(c, []).append((p, hi))
            tables.append(per_kind(rows, p >= hi))
            summaries.append(metrics(rows, p >= hi))
        mu, sd, w = fit(rows.x, rows.right.astype(np.float64))
        p_all = prob((mu, sd, w), rows.x)
        # thresholds on the out-of-fold probabilities: what the model fitted on all of them
        # will give queries it has not seen (its in-sample probabilities are over-confident)
        every = np.ones(len(p_all), bool)
        hi_all = float(np.mean([pick_answer(rows, p, every) for p, _ in oof[c]]))
        lo_all = float(np.mean([pick_suggest(rows, p, hi_all) for p, _ in oof[c]]))
        models[config_name(c)] = ConfidenceModel(
            tuple(rows.keys), tuple(map(float, mu)), tuple(map(float, sd)),
            tuple(map(float, w)), hi_all, lo_all,
        )  # fmt: skip
        name = config_name(c)
        print_table(f"{name}: {FOLDS}-fold CV (stratified by kind), mean of {len(SEEDS)} shuffles",
                    mean_tables(tables))  # fmt: skip
        print(f"{name}: fitted on all: {short(metrics(rows, p_all >= hi_all))} "
              f"(answer >= {hi_all:.3f}, suggest >= {lo_all:.3f})")  # fmt: skip

    full = retriever.models
    if len(full) > 1 and "e5" in full:
        cheap = tuple(m for m in full if m != "e5")
        low, high, m, ref, share = cascade_thresholds(
            rows_of[cheap], rows_of[full], oof[cheap], oof[full]
        )
        name = config_name(cheap)
        models[name] = ConfidenceModel(**{**models[name].__dict__, "cascade": (low, high)})
        print(f"\ncascade {name} -> {config_name(full)}: escalate when {low:.2f} <= p < "
              f"{high:.2f}: {share:.1%} of queries reach e5; out-of-fold {short(m)} "
              f"(full hybrid, same folds: {short(ref)})")  # fmt: skip

    if args.write:
        header = (
            "Confidence models, written by `python -m faq.retrieval.calibrate --write` from\n"
            f"{args.queries} ({len(labels)} queries) on the knowledge base in {args.kb}/.\n"
            "Do not edit by hand: refit instead (see faq/retrieval/confidence.py)."
        )
        MODELS_FILE.write_text(dump_models(models, header), encoding="utf-8")
        print(f"wrote {MODELS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
