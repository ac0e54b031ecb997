"""Signals for the confidence model (how sure the ranking is, not which entry wins). Absolute
measures matter most for out-of-scope queries: the fused score is relative to the other entries
and always has a winner, while the dense cosine, term coverage and fuzzy ratio of the top entry
say whether it is actually close to the query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from .analyzer import Analysis
from .bm25 import FloatArray
from .normalize import fold, script_profile
from .segment import sentence_count


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
    idf: Mapping[str, float],
    max_idf: float,
    fuzzy_top: float,
    dense_keys: Sequence[str],
) -> dict[str, float]:
    top = int(order[0])
    second = float(fused[order[1]]) if len(order) > 1 else 0.0
    folded = fold(query)
    lex = signals["lem_qa"]
    feats: dict[str, float] = {
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
        agree.append(float(np.argmax(q) == top))
    # 1.0 when every signal family puts the same entry first
    feats["agreement"] = float(np.mean(agree))
    return feats
