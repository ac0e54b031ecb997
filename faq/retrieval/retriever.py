"""The Retriever: builds every index once (analysis, BM25 fields, cached entry embeddings) and
ranks a query with no I/O. Signals, one array over the entries each:

  lem_qa   BM25 over content lemmas (+ synonym group terms) of questions and answers, ja + en
  lem_a    the same over answers only (a second length normalisation: answers are long)
  sub_qa   BM25 over character bigrams inside those lemmas (compounds: 保育 vs 保育園)
  read_q   BM25 over kana-reading n-grams of the questions (kana-only queries, wrong kanji)
  fuzzy_q  rapidfuzz similarity to the questions, short queries only (typos in keywords)
  <m>_q    cosine of the query to the questions, per dense model m (max over a entry's questions)
  <m>_qa   cosine of the query to question + answer passages
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from . import fusion
from .anacache import CachedAnalyzer
from .analyzer import Analysis, Analyzer, load_analyzer
from .bm25 import BM25, FloatArray, char_ngrams
from .dense import Encoder, load_encoders
from .embcache import embed_cached
from .features import ranking_features, soft_uncovered_words
from .fuzzy import FuzzyQuestions
from .leaveout import IndexView, LeaveOut, LeftOutView
from .normalize import fold, strip_aside
from .segment import question_focus
from .synonyms import Synonyms
from .values import Document, Ranking, Scored

log = logging.getLogger(__name__)

_READING_NGRAMS = (2, 3)
_FUZZY_CANDIDATES = 50
_PASSAGE_CHARS = 200
# The model that re-encodes the query without its uncovered words (Retriever._reduced): the
# cheap one, so that the cascade's first stage has the feature too.
_REDUCE_MODEL = "use"


def _hashed(grams: Sequence[str]) -> npt.NDArray[np.int64]:
    """Distinct n-grams as sorted int64 hashes (str hashes are stable within the process)."""
    return np.unique(np.fromiter((hash(g) for g in grams), dtype=np.int64, count=len(grams)))


def subwords(terms: Sequence[str]) -> list[str]:
    """Character bigrams inside Japanese lemmas longer than two characters."""
    out: list[str] = []
    for t in terms:
        if t.isascii() or t.startswith("≡"):
            continue
        out.extend(char_ngrams(t, (2,)) if len(t) > 2 else [t])
    return out


@dataclass(frozen=True)
class _DenseIndex:
    encoder: Encoder
    questions: FloatArray  # one row per question unit
    passages: FloatArray  # one row per passage unit


def top_indices(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.intp]:
    k = min(k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    return best[np.argsort(-scores[best], kind="stable")]


class _Pool:
    """Max-pools scores over units (several phrasings or languages of one entry) into entries."""

    def __init__(self, owners: Sequence[int]) -> None:
        owner = np.asarray(owners, dtype=np.int64)
        # Units are emitted entry by entry, so each entry's units are contiguous.
        self._starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        self._identity = len(self._starts) == len(owner)

    def __call__(self, unit_scores: FloatArray) -> FloatArray:
        if self._identity:
            return unit_scores
        return np.maximum.reduceat(unit_scores, self._starts)


class Retriever:
    def __init__(
        self,
        docs: Sequence[Document],
        analyzer: Analyzer,
        synonyms: Synonyms,
        encoders: Sequence[Encoder],
        cache_dir: Path | None,
    ) -> None:
        t0 = time.perf_counter()
        cached = CachedAnalyzer(analyzer, cache_dir)
        self.docs = list(docs)
        self.ids = [d.id for d in self.docs]
        self.analyzer = analyzer
        self.synonyms = synonyms
        self.cache_dir = cache_dir  # also where calibration keeps its probes' embeddings

        q_texts: list[str] = []
        q_owner: list[int] = []
        p_texts: list[str] = []
        p_owner: list[int] = []
        doc_terms: list[list[str]] = []
        ans_terms: list[list[str]] = []
        q_readings: list[list[str]] = []
        # reading 3-grams of each entry's questions, and of its questions + answers, hashed
        # (sorted int64: ~7 MB for localgovFAQ's long answers, where sets of str took ~70 MB)
        self._sound_q: list[npt.NDArray[np.int64]] = []
        self._sound_qa: list[npt.NDArray[np.int64]] = []
        # per question unit, for leaving one question out (selfcal.py's probes)
        self.question_texts = q_texts
        self._unit_terms: list[list[str]] = []
        self._unit_sounds: list[list[str]] = []
        self._answer_sounds: list[list[str]] = []
        p_heads: list[str] = []
        self._passage_heads = p_heads
        for i, d in enumerate(self.docs):
            questions = [q for q in (*d.questions_ja, *d.questions_en) if q.strip()] or [
                d.answer_ja[:100] or d.id
            ]
            q_texts.extend(questions)
            q_owner.extend([i] * len(questions))
            qa = [
                t
                for t in (
                    self._passage(d.questions_ja, d.answer_ja),
                    self._passage(d.questions_en, d.answer_en),
                )
                if t
            ]
            p_texts.extend(qa or questions[:1])
            p_owner.extend([i] * len(qa or questions[:1]))
            # the question each passage starts with (a probe of that question must skip it)
            heads = [
                (qs[0] if qs else "")
                for qs, ans in ((d.questions_ja, d.answer_ja), (d.questions_en, d.answer_en))
                if ans.strip()
            ]
            p_heads.extend(heads or questions[:1])
            terms: list[str] = []
            sounds: list[str] = []
            for q in questions:
                a = cached.analyse(q)
                unit_terms = a.terms + synonyms.terms(q, a)
                terms += unit_terms
                self._unit_terms.append(unit_terms)
                q_readings.append(char_ngrams(a.reading, _READING_NGRAMS))
                self._unit_sounds.append(char_ngrams(a.reading, (3,)))
                sounds += self._unit_sounds[-1]
            self._sound_q.append(_hashed(sounds))
            answers: list[str] = []
            answer_sounds: list[str] = []
            for text in (d.answer_ja, d.answer_en):
                if text.strip():
                    a = cached.analyse(text)
                    answers += a.terms + synonyms.terms(text, a)
                    answer_sounds += char_ngrams(a.reading, (3,))
            self._answer_sounds.append(answer_sounds)
            self._sound_qa.append(_hashed(sounds + answer_sounds))
            doc_terms.append(terms + answers)
            ans_terms.append(answers)
        cached.save()
        self._lem_qa = BM25(doc_terms)
        self._lem_a = BM25(ans_terms)
        self._sub_qa = BM25([subwords(t) for t in doc_terms])
        self._read_q = BM25(q_readings)
        self._doc_termsets = [frozenset(t) for t in doc_terms]
        self._doc_terms = doc_terms
        self._ans_terms = ans_terms
        # folded question + answer text, for the near-miss features (features._soft_uncovered)
        self._doc_texts = [
            fold(" ".join((*d.questions_ja, *d.questions_en, d.answer_ja, d.answer_en)))
            for d in self.docs
        ]
        self._q_pool = _Pool(q_owner)
        self._p_pool = _Pool(p_owner)
        owner = np.asarray(q_owner)
        self._units_of = [np.flatnonzero(owner == i) for i in range(len(self.docs))]
        self.unit_owner = q_owner
        p_own = np.asarray(p_owner)
        self._passages_of = [np.flatnonzero(p_own == i) for i in range(len(self.docs))]
        self._fuzzy = FuzzyQuestions(q_texts)
        self.lexical_seconds = time.perf_counter() - t0

        t1 = time.perf_counter()
        self._dense = [
            _DenseIndex(
                encoder=e,
                questions=embed_cached(e, q_texts, "question", cache_dir),
                passages=embed_cached(e, p_texts, "passage", cache_dir),
            )
            for e in encoders
        ]
        self.dense_seconds = time.perf_counter() - t1
        self.weights = fusion.weights_for(tuple(e.key for e in encoders))
        self.build_seconds = time.perf_counter() - t0

    @staticmethod
    def _passage(questions: Sequence[str], answer: str) -> str:
        """First question + the opening of the answer: the opening says what the entry is
        about, the rest is detail and contact lines; and the e5 cost grows with length (the
        full 1,786 localgovFAQ answers take ~45 CPU-minutes, the openings a fraction)."""
        if not answer.strip():
            return ""
        head = questions[0] if questions else ""
        return f"{head}\n{answer.strip()[:_PASSAGE_CHARS]}".strip()

    @classmethod
    def build(
        cls,
        docs: Sequence[Document],
        *,
        cache_dir: Path | None = None,
        dense: str = "auto",
        synonyms: Path | None = None,
    ) -> Retriever:
        analyzer = load_analyzer()
        table = Synonyms.load(synonyms, analyzer)
        encoders = load_encoders(dense)
        r = cls(docs, analyzer, table, encoders, cache_dir)
        log.info(
            "faq.retrieval: %d entries indexed in %.2fs (analyser %s, %d synonym groups, "
            "dense: %s)",
            len(r.docs),
            r.build_seconds,
            analyzer.name,
            len(table),
            ", ".join(e.name for e in encoders) or "off (lexical only)",
        )
        return r

    @property
    def encoders(self) -> list[Encoder]:
        """The loaded sentence encoders, for a second index over other texts (the bot's
        commands) that must not load the models again."""
        return [d.encoder for d in self._dense]

    @property
    def dense_models(self) -> list[str]:
        return [d.encoder.name for d in self._dense]

    # --- query time: no I/O below this line ------------------------------------------------
    def prepare(self, query: str) -> Query:
        """Analyse `query` once; rank_stage() then adds only the signals each stage lacks."""
        query = strip_aside(query)
        a = self.analyzer.analyse(query)
        groups = self.synonyms.terms(query, a)
        return Query(query, a, a.terms + groups, groups)

    def _ensure(self, q: Query, weights: Mapping[str, float] | None, models: Sequence[str]) -> None:
        out = q.signals

        def wanted(name: str) -> bool:
            return name not in out and (weights is None or bool(weights.get(name)))

        if "lem_qa" not in out:  # always: the confidence features read it
            out["lem_qa"] = self._lem_qa.score(q.terms, q.groups)
        if wanted("lem_a"):
            out["lem_a"] = self._lem_a.score(q.terms, q.groups)
        if wanted("sub_qa"):
            out["sub_qa"] = self._sub_qa.score(subwords(q.analysis.terms))
        if wanted("read_q"):
            grams = char_ngrams(q.analysis.reading, _READING_NGRAMS)
            out["read_q"] = self._q_pool(self._read_q.score(grams))
        if wanted("fuzzy_q") and self._fuzzy.applies(q.text):
            near = top_indices(out["lem_qa"], _FUZZY_CANDIDATES)
            units = np.concatenate([self._units_of[int(i)] for i in near])
            out["fuzzy_q"] = self._q_pool(self._fuzzy.scores(q.text, units))
        for d in self._dense:
            key = d.encoder.key
            if key not in models or f"{key}_q" in out:
                continue
            if q.focus is None:
                q.focus = question_focus(q.text)
            v = q.vectors.get(key)
            if v is None:  # calibration probes come with their vector (the stored question's)
                v = q.vectors[key] = d.encoder.encode([q.focus], "query")[0]
            out[f"{key}_q"] = self._q_pool(d.questions @ v)
            # always kept: cheap (one mat-vec) and a confidence feature
            out[f"{key}_qa"] = self._p_pool(d.passages @ v)

    def signals(
        self, query: str, weights: Mapping[str, float] | None = None
    ) -> tuple[dict[str, FloatArray], Analysis, list[str]]:
        """The signals for `query` that `weights` use (all of them when None), one score per
        entry, with every loaded dense model; lem_qa is always computed."""
        q = self.prepare(query)
        self._ensure(q, weights, self.models)
        return q.signals, q.analysis, q.terms

    @property
    def models(self) -> tuple[str, ...]:
        """Keys of the loaded dense models ("e5", "use"), sorted."""
        return tuple(sorted(d.encoder.key for d in self._dense))

    def rank(self, query: str, top: int = 5) -> Ranking:
        """Rank with every loaded model (the full hybrid)."""
        return self.rank_stage(self.prepare(query), self.models, top)

    def rank_stage(
        self, q: Query, models: Sequence[str], top: int = 5, leave: LeaveOut | None = None
    ) -> Ranking:
        """Rank with the lexical signals plus the dense `models` only (a subset of the loaded
        ones), reusing whatever an earlier stage computed for `q`. `leave` ranks as if one
        question, or one whole entry, were not in the index (calibration probes only)."""
        if not self.docs:
            return Ranking([], {})
        keys = tuple(sorted(k for k in models if k in self.models))
        weights = fusion.adjust_for_query(fusion.weights_for(keys), q.text)
        self._ensure(q, weights, keys)
        view = IndexView(self) if leave is None else LeftOutView(self, leave)
        signals = view.signals(q, keys)
        fused = fusion.fuse(signals, weights)
        order = top_indices(fused, max(top, 2))
        ranked = [Scored(self.ids[i], float(fused[i])) for i in order[:top]]
        best = int(order[0])
        uncovered = soft_uncovered_words(q.analysis.terms, view.termset(best), view.text(best))
        feats = ranking_features(
            query=q.text,
            analysis=q.analysis,
            terms=q.terms,
            fused=fused,
            order=order,
            signals=signals,
            top_termset=view.termset(best),
            uncovered=uncovered,
            idf=self._lem_qa.idf,
            max_idf=self._lem_qa.max_idf,
            fuzzy_top=self._fuzzy.best_for(q.text, view.units(best)),
            dense_keys=list(keys),
        )
        feats.update(self._sound_coverage(q, view.sounds(best), kana=feats["q_kana_only"] > 0))
        if _REDUCE_MODEL in keys:
            feats.update(self._reduced(q, view.units(best), signals, best, uncovered))
        return Ranking(ranked, feats)

    def _sound_coverage(
        self,
        q: Query,
        sounds: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
        *,
        kana: bool,
    ) -> dict[str, float]:
        """The share of the query's kana-reading 3-grams that the top entry's questions (and
        answers) contain. Lemmas fail kana-only and half-width queries (あきやばんく -> 秋 +
        野蛮), so the lemma coverage features call them uncovered; their readings still meet the
        entry's. Worth +2 CV points of P@1 (bench/README.md)."""
        grams = _hashed(char_ngrams(q.analysis.reading, (3,)))
        if not len(grams):
            return {"read_cov_q": 0.0, "read_cov_qa": 0.0, "kana_read_cov": 0.0}
        in_q = float(np.isin(grams, sounds[0], assume_unique=True).mean())
        in_qa = float(np.isin(grams, sounds[1], assume_unique=True).mean())
        return {"read_cov_q": in_q, "read_cov_qa": in_qa, "kana_read_cov": in_qa if kana else 0.0}

    def _reduced(
        self,
        q: Query,
        units: npt.NDArray[np.intp],
        signals: Mapping[str, FloatArray],
        top: int,
        uncovered: Sequence[str],
    ) -> dict[str, float]:
        """Does the top entry answer the question, or only the part of it that it covers? The
        query is encoded again without the words the entry does not contain, even softly
        (解体 in 「空き家の解体に補助金は？」). If the entry moves much closer to the query
        once they are gone (red_delta > 0), they were asking about something the entry does not
        answer; if the query loses its meaning without them (red_sim low), they were the
        question itself, said in other words (取り消し for キャンセル). One extra USE encode
        (~1-2 ms), only when some word is uncovered."""
        if not uncovered:
            return {"red_delta": 0.0, "red_sim": 1.0}
        index = next(d for d in self._dense if d.encoder.key == _REDUCE_MODEL)
        text = self.analyzer.without(q.focus or q.text, frozenset(uncovered))
        v = q.reduced.get(text)
        if v is None:
            v = q.reduced[text] = index.encoder.encode([text or "。"], "query")[0]
        full = q.vectors[_REDUCE_MODEL]
        near = float((index.questions[units] @ v).max()) if len(units) else 0.0
        norms = float(np.linalg.norm(full) * np.linalg.norm(v)) + 1e-9
        return {
            "red_delta": near - float(signals[f"{_REDUCE_MODEL}_q"][top]),
            "red_sim": float(full @ v) / norms,
        }

    def nearest_question(self, query: str, model: str) -> float | None:
        """The highest cosine of `query` to any question under dense `model` (None when the
        model is not loaded): a cheap test of whether ranking against this index is worth it
        (one mat-vec; the query's vector usually comes from the encoder's recent queries)."""
        index = next((d for d in self._dense if d.encoder.key == model), None)
        if index is None or not self.docs:
            return None
        v = index.encoder.encode([question_focus(strip_aside(query))], "query")[0]
        return float((index.questions @ v).max())

    def explain(self, query: str) -> dict[str, Any]:
        """Per-signal top entries, for staff debugging (not used by the bot)."""
        signals, _, _ = self.signals(query)
        return {name: [self.ids[int(i)] for i in np.argsort(-s)[:3]] for name, s in signals.items()}


@dataclass
class Query:
    """One query's analysis and the signals computed so far (grows stage by stage)."""

    text: str
    analysis: Analysis
    terms: list[str]  # content lemmas + synonym-group terms
    groups: list[str]
    focus: str | None = None  # the question sentence(s) for the sentence encoders
    signals: dict[str, FloatArray] = field(default_factory=dict)
    vectors: dict[str, FloatArray] = field(default_factory=dict)  # query embedding per model
    reduced: dict[str, FloatArray] = field(default_factory=dict)  # see Retriever._reduced
