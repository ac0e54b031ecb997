"""Signals for the confidence model (how sure the ranking is, not which entry wins). Absolute
measures matter most for out-of-scope queries: the fused score is relative to the other entries
and always has a winner, while the dense cosine, term coverage and fuzzy ratio of the top entry
say whether it is actually close to the query."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz

from .analyzer import Analysis
from .bm25 import FloatArray
from .normalize import fold, script_profile
from .segment import sentence_count

_SOFT_EN = 80  # rapidfuzz partial_ratio at which an English word counts as present


def _z_at(x: FloatArray, i: int) -> float:
    sd = float(x.std())
    return float((x[i] - x.mean()) / sd) if sd > 1e-9 else 0.0


def _uncovered(
    terms: Sequence[str], top: frozenset[str], idf: Mapping[str, float], max_idf: float
) -> float:
    words = set(terms)
    total = sum(idf.get(t, max_idf) for t in words)
    if total <= 0:
        return 0.0
    return sum(idf.get(t, max_idf) for t in words if t not in top) / total


def soft_uncovered_words(terms: Sequence[str], top: frozenset[str], text: str) -> list[str]:
    """The query words the top entry does not contain, even softly: a word also counts as
    contained when the entry's text holds one of its character bigrams (幼稚圏 -> 幼稚園, a
    typo) or, for an English word, a close spelling (cowrking). What stays is what a near miss
    adds: 解体 in 「空き家の解体に補助金は？」, 泉質 in 「温泉の泉質は？」."""
    out = []
    for t in dict.fromkeys(terms):
        if t in top:
            continue
        if t.isascii():
            soft = len(t) >= 4 and fuzz.partial_ratio(t, text) >= _SOFT_EN
        else:
            soft = any(t[i : i + 2] in text for i in range(max(len(t) - 1, 1)))
        if not soft:
            out.append(t)
    return out


def _soft_uncovered(
    uncovered: Sequence[str], terms: Sequence[str], idf: Mapping[str, float], max_idf: float
) -> tuple[float, float]:
    """Like _uncovered, over the words soft_uncovered_words() left: the idf-weighted share of
    the query they make up, and the highest idf among them (over max_idf)."""
    total = sum(idf.get(t, max_idf) for t in set(terms))
    if total <= 0:
        return 0.0, 0.0
    weights = [idf.get(t, max_idf) for t in uncovered]
    return sum(weights) / total, max(weights, default=0.0) / max(max_idf, 1e-9)


def _share(pred: Callable[[str], bool], terms: Sequence[str]) -> float:
    words = set(terms)
    return sum(1 for t in words if pred(t)) / len(words) if words else 0.0


def _rank_of(scores: FloatArray, doc: int) -> float:
    return float(np.count_nonzero(scores > scores[doc]))


def ranking_features(
    *,
    query: str,
    analysis: Analysis,
    terms: Sequence[str],
    fused: FloatArray,
    order: npt.NDArray[np.intp],
    signals: Mapping[str, FloatArray],
    top_termset: frozenset[str],
    uncovered: Sequence[str],
    idf: Mapping[str, float],
    max_idf: float,
    fuzzy_top: float,
    dense_keys: Sequence[str],
) -> dict[str, float]:
    top = int(order[0])
    second = float(fused[order[1]]) if len(order) > 1 else 0.0
    folded = fold(query)
    lex = signals["lem_qa"]
    soft_share, soft_max = _soft_uncovered(uncovered, analysis.terms, idf, max_idf)
    feats: dict[str, float] = {
        "soft_uncovered": soft_share,
        "soft_uncovered_max": soft_max,
        "top_score": float(fused[top]),
        "margin": float(fused[top]) - second,
        "lex_top_z": _z_at(lex, top),
        "lex_top_raw": float(lex[top]),
        "lex_rank_of_top": _rank_of(lex, top),
        "lex_max_raw": float(lex.max()) if len(lex) else 0.0,
        # share of the query's content terms that the top entry contains
        "coverage": (sum(1 for t in set(terms) if t in top_termset) / len(set(terms)))
        if terms
        else 0.0,
        "query_terms": float(len(set(terms))),
        # Near misses share common words with an entry but add a specific one it lacks
        # (空き家の「固定資産税」, 温泉の「泉質」): the idf-weighted share of the query that
        # the top entry leaves out, and how many query words the knowledge base never uses.
        "uncovered_idf": _uncovered(terms, top_termset, idf, max_idf),
        "oov_terms": float(sum(1 for t in set(terms) if t not in idf)),
        # Questions about other services use words the knowledge base never contains
        # (パスポート, 確定申告, 天気): the share of the query's own lemmas that are unknown.
        "oov_share": _share(lambda t: t not in idf, analysis.terms),
        # the most specific query word the top entry lacks (固定資産税 in a 空き家 question)
        "uncovered_max_idf": max(
            (idf.get(t, max_idf) for t in set(terms) if t not in top_termset), default=0.0
        )
        / max(max_idf, 1e-9),
        # the share of the query's idf mass the top entry's BM25 score reaches
        "lex_norm": float(lex[top]) / max(2.2 * sum(idf.get(t, max_idf) for t in set(terms)), 1e-9),
        "fuzzy_top": fuzzy_top,
        "q_chars": float(len(folded)),
        "q_sentences": float(sentence_count(query)),
        "dense_models": float(len(dense_keys)),
        **script_profile(folded),
    }
    agree = [float(np.argmax(lex) == top)]
    for key in dense_keys:
        q = signals[f"{key}_q"]
        feats[f"{key}_top_cos"] = float(q[top])
        feats[f"{key}_max_cos"] = float(q.max())
        feats[f"{key}_rank_of_top"] = _rank_of(q, top)
        # how far the top entry stands out from every other entry (raw cosines)
        feats[f"{key}_gap"] = float(q[top]) - float(np.delete(q, top).max()) if len(q) > 1 else 0.0
        qa = signals.get(f"{key}_qa")
        if qa is not None:
            feats[f"{key}_qa_top_cos"] = float(qa[top])
        agree.append(float(np.argmax(q) == top))
    # 1.0 when every signal family puts the same entry first
    feats["agreement"] = float(np.mean(agree))
    return feats
