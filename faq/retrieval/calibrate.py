"""Refit the confidence model (confidence.py) on a labelled query set, for staff or developers:

    python -m faq.retrieval.calibrate --kb faq --queries bench/data/faq_queries.jsonl \\
        [--dense auto] [--cache var/faq-cache]

Prints the cross-fitted figures (each half scored by a model fitted on the other half: the
honest estimate) and the model to paste into confidence._MODELS for that dense configuration.
Offline tool: loads the knowledge base with faq.kb, never used by the bot at run time."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .confidence import _LOG_FEATURES
from .retriever import Retriever
from .values import Document

FEATURES = (
    "uncovered_idf", "oov_terms", "top_score", "margin", "coverage", "lex_top_z", "lex_top_raw",
    "fuzzy_top", "agreement", "e5_top_cos", "use_top_cos", "e5_rank_of_top", "use_rank_of_top",
    "lex_rank_of_top", "q_latin_ratio", "q_chars", "query_terms",
)  # fmt: skip
MAX_WRONG = 0.04  # on the fitting data, leaving room for the held-out half
MIN_REJECT = 0.92
MIN_OOS_UNKNOWN = 0.6  # most out-of-scope questions should get "don't know", not choices
Array = npt.NDArray[np.float64]


def _matrix(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> Array:
    out = [
        [math.log1p(max(r["f"][k], 0.0)) if k in _LOG_FEATURES else float(r["f"][k]) for k in keys]
        for r in rows
    ]
    return np.asarray(out, dtype=np.float64)


def _fit(x: Array, y: Array, l2: float = 1.0) -> tuple[Array, Array, Array]:
    """L2-regularised logistic regression by Newton steps (no scikit-learn dependency)."""
    mu, sd = x.mean(0), x.std(0) + 1e-9
    xb = np.c_[(x - mu) / sd, np.ones(len(x))]
    w = np.zeros(xb.shape[1])
    reg = l2 * np.r_[np.ones(len(w) - 1), 0.0]
    for _ in range(100):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + reg * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(reg)
        w -= np.linalg.solve(hess, grad)
    return mu, sd, w


def _prob(model: tuple[Array, Array, Array], x: Array) -> Array:
    mu, sd, w = model
    out: Array = 1.0 / (1.0 + np.exp(-(np.c_[(x - mu) / sd, np.ones(len(x))] @ w)))
    return out


def _score(rows: Sequence[Mapping[str, Any]], p: Array, hi: float, lo: float) -> dict[str, float]:
    ins = [i for i, r in enumerate(rows) if r["id"]]
    oos = [i for i, r in enumerate(rows) if not r["id"]]
    right = [r["id"] is not None and r["ranked"][0] == r["id"] for r in rows]
    return {
        "P@1": sum(p[i] >= hi and right[i] for i in ins) / max(len(ins), 1),
        "reject": sum(p[i] < hi for i in oos) / max(len(oos), 1),
        "wrong": sum(p[i] >= hi and not right[i] for i in range(len(rows))) / len(rows),
        "in_scope_unknown": sum(p[i] < lo for i in ins) / max(len(ins), 1),
        "oos_unknown": sum(p[i] < lo for i in oos) / max(len(oos), 1),
    }


def _thresholds(rows: Sequence[Mapping[str, Any]], p: Array) -> tuple[float, float]:
    best_hi, best_p1 = 0.99, -1.0
    for hi in np.linspace(0.3, 0.99, 140):
        s = _score(rows, p, hi, 0.0)
        if s["wrong"] <= MAX_WRONG and s["reject"] >= MIN_REJECT and s["P@1"] > best_p1:
            best_hi, best_p1 = float(hi), s["P@1"]
    best_lo, best_unknown = 0.02, 2.0
    for lo in np.linspace(0.02, best_hi, 100):
        s = _score(rows, p, best_hi, float(lo))
        if s["oos_unknown"] >= MIN_OOS_UNKNOWN and s["in_scope_unknown"] < best_unknown:
            best_lo, best_unknown = float(lo), s["in_scope_unknown"]
    return best_hi, best_lo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kb", default="faq")
    ap.add_argument("--queries", default="bench/data/faq_queries.jsonl")
    ap.add_argument("--dense", default="auto")
    ap.add_argument("--cache", default="var/faq-cache")
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
    retriever = Retriever.build(docs, dense=args.dense, cache_dir=Path(args.cache))
    rows: list[dict[str, Any]] = []
    with open(args.queries, encoding="utf-8") as fh:
        for line in fh:
            q = json.loads(line)
            ranking = retriever.rank(q["q"], 5)
            rows.append({**q, "ranked": [s.id for s in ranking.ranked], "f": ranking.features})
    keys = [k for k in FEATURES if k in rows[0]["f"]]
    x = _matrix(rows, keys)
    y = np.array([float(r["id"] is not None and r["ranked"][0] == r["id"]) for r in rows])
    cross = np.zeros(len(rows))
    halves = (list(range(0, len(rows), 2)), list(range(1, len(rows), 2)))
    for fit_idx, test_idx in (halves, halves[::-1]):
        cross[test_idx] = _prob(_fit(x[fit_idx], y[fit_idx]), x[test_idx])
    model = _fit(x, y)
    hi, lo = _thresholds(rows, _prob(model, x))
    print(
        "in-sample  ",
        {k: round(float(v), 3) for k, v in _score(rows, _prob(model, x), hi, lo).items()},
    )
    print("cross-fit  ", {k: round(float(v), 3) for k, v in _score(rows, cross, hi, lo).items()})
    mu, sd, w = model
    raw = {
        "keys": keys,
        "mean": [round(float(v), 5) for v in mu],
        "scale": [round(float(v), 5) for v in sd],
        "coef": [round(float(v), 4) for v in w],
        "answer": round(hi, 3),
        "suggest": round(lo, 3),
    }
    print("model for", retriever.dense_models or "lexical only:")
    print(json.dumps(raw, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
