"""Answer, suggest, or say you don't know: a logistic model over Ranking.features estimates the
probability that the top entry is the right answer, and two thresholds cut it into three bands.

Calibrated on bench/data/faq_queries.jsonl (460 in-scope + 108 out-of-scope queries against the
sample knowledge base), one model per dense configuration because the features differ. The
thresholds were chosen for wrong answers <= 4 % and out-of-scope rejection >= 92 % on the
fitting data; bench/README.md gives the cross-fitted (held-out) figures. Refit with
`python -m faq.retrieval.calibrate` when the knowledge base or the ranking weights change a lot."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum


class Band(StrEnum):
    ANSWER = "answer"  # answer outright with the top entry
    SUGGEST = "suggest"  # 「もしかして…」: offer the 2-3 closest entries
    UNKNOWN = "unknown"  # say so and offer a person


# Features whose effect is multiplicative (counts, lengths, ranks) enter as log1p.
_LOG_FEATURES = ("q_chars", "query_terms", "e5_rank_of_top", "use_rank_of_top", "lex_rank_of_top")


@dataclass(frozen=True)
class ConfidenceModel:
    keys: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]  # one per key, then the intercept
    answer: float  # probability at or above which the bot answers
    suggest: float  # at or above which it offers choices

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.coef[-1]
        for key, mu, sd, w in zip(self.keys, self.mean, self.scale, self.coef, strict=False):
            x = float(features.get(key, mu))
            if key in _LOG_FEATURES:
                x = math.log1p(max(x, 0.0))
            z += w * (x - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def band(self, features: Mapping[str, float]) -> Band:
        p = self.probability(features)
        if p >= self.answer:
            return Band.ANSWER
        if p >= self.suggest:
            return Band.SUGGEST
        return Band.UNKNOWN


def _model(raw: Mapping[str, Sequence[float] | Sequence[str] | float]) -> ConfidenceModel:
    return ConfidenceModel(
        keys=tuple(str(k) for k in raw["keys"]),  # type: ignore[union-attr]
        mean=tuple(float(x) for x in raw["mean"]),  # type: ignore[union-attr]
        scale=tuple(float(x) for x in raw["scale"]),  # type: ignore[union-attr]
        coef=tuple(float(x) for x in raw["coef"]),  # type: ignore[union-attr]
        answer=float(raw["answer"]),  # type: ignore[arg-type]
        suggest=float(raw["suggest"]),  # type: ignore[arg-type]
    )


# Fitted by `python -m faq.retrieval.calibrate`; keyed by the dense
# models that were loaded, as in fusion.WEIGHTS_BY_MODELS.
_MODELS: dict[tuple[str, ...], ConfidenceModel] = {
    (): _model(
        {
            "keys": [
                "uncovered_idf",
                "oov_terms",
                "top_score",
                "margin",
                "coverage",
                "lex_top_z",
                "lex_top_raw",
                "fuzzy_top",
                "agreement",
                "lex_rank_of_top",
                "q_latin_ratio",
                "q_chars",
                "query_terms",
            ],
            "mean": [
                0.42442,
                0.98063,
                5.10393,
                2.33871,
                0.63904,
                5.23534,
                15.83497,
                0.42706,
                0.88556,
                0.07242,
                0.19978,
                3.07529,
                1.77392,
            ],
            "scale": [
                0.2991,
                1.17094,
                2.15457,
                2.28895,
                0.27325,
                2.14268,
                10.0833,
                0.15145,
                0.31834,
                0.26999,
                0.38736,
                0.6838,
                0.48742,
            ],
            "coef": [
                -0.5704,
                0.0235,
                1.2801,
                0.7924,
                0.6196,
                -1.1543,
                -0.0556,
                0.7522,
                0.0453,
                0.027,
                -0.355,
                0.412,
                0.3829,
                1.3921,
            ],
            "answer": 0.796,
            "suggest": 0.357,
        }
    ),
    ("use",): _model(
        {
            "keys": [
                "uncovered_idf",
                "oov_terms",
                "top_score",
                "margin",
                "coverage",
                "lex_top_z",
                "lex_top_raw",
                "fuzzy_top",
                "agreement",
                "use_top_cos",
                "use_rank_of_top",
                "lex_rank_of_top",
                "q_latin_ratio",
                "q_chars",
                "query_terms",
            ],
            "mean": [
                0.44914,
                0.98063,
                3.97816,
                1.65827,
                0.61633,
                4.89341,
                15.15388,
                0.43587,
                0.76144,
                0.61738,
                0.34553,
                0.28998,
                0.19978,
                3.07529,
                1.77392,
            ],
            "scale": [
                0.31111,
                1.17094,
                1.35608,
                1.41149,
                0.28721,
                2.38767,
                10.24595,
                0.14939,
                0.32072,
                0.18331,
                0.8364,
                0.63495,
                0.38736,
                0.6838,
                0.48742,
            ],
            "coef": [
                -0.2787,
                0.1393,
                0.5005,
                1.0852,
                1.2169,
                -0.9732,
                -0.0425,
                0.5012,
                0.7071,
                0.1595,
                0.7654,
                -0.0735,
                -0.4117,
                0.6657,
                0.0891,
                1.9109,
            ],
            "answer": 0.841,
            "suggest": 0.343,
        }
    ),
    ("e5",): _model(
        {
            "keys": [
                "uncovered_idf",
                "oov_terms",
                "top_score",
                "margin",
                "coverage",
                "lex_top_z",
                "lex_top_raw",
                "fuzzy_top",
                "agreement",
                "e5_top_cos",
                "e5_rank_of_top",
                "lex_rank_of_top",
                "q_latin_ratio",
                "q_chars",
                "query_terms",
            ],
            "mean": [
                0.44593,
                0.98063,
                3.72272,
                1.57803,
                0.61746,
                4.91831,
                15.20886,
                0.4317,
                0.74736,
                0.91243,
                0.41804,
                0.26757,
                0.19978,
                3.07529,
                1.77392,
            ],
            "scale": [
                0.31206,
                1.17094,
                1.31525,
                1.35076,
                0.28989,
                2.37735,
                10.17234,
                0.15374,
                0.34979,
                0.04006,
                0.90867,
                0.60075,
                0.38736,
                0.6838,
                0.48742,
            ],
            "coef": [
                0.0344,
                -0.003,
                0.3827,
                1.237,
                0.6691,
                -0.8617,
                0.2453,
                0.6919,
                0.9786,
                0.9285,
                1.1764,
                -0.032,
                -0.1435,
                0.2352,
                0.3712,
                2.014,
            ],
            "answer": 0.836,
            "suggest": 0.267,
        }
    ),
    ("e5", "use"): _model(
        {
            "keys": [
                "uncovered_idf",
                "oov_terms",
                "top_score",
                "margin",
                "coverage",
                "lex_top_z",
                "lex_top_raw",
                "fuzzy_top",
                "agreement",
                "e5_top_cos",
                "use_top_cos",
                "e5_rank_of_top",
                "use_rank_of_top",
                "lex_rank_of_top",
                "q_latin_ratio",
                "q_chars",
                "query_terms",
            ],
            "mean": [
                0.45481,
                0.98063,
                3.63913,
                1.52043,
                0.60876,
                4.79973,
                15.02124,
                0.43269,
                0.74061,
                0.91256,
                0.6119,
                0.40876,
                0.46023,
                0.31241,
                0.19978,
                3.07529,
                1.77392,
            ],
            "scale": [
                0.31712,
                1.17094,
                1.24226,
                1.26307,
                0.2966,
                2.46611,
                10.28122,
                0.15385,
                0.32921,
                0.03997,
                0.19025,
                0.90938,
                0.94995,
                0.66751,
                0.38736,
                0.6838,
                0.48742,
            ],
            "coef": [
                0.1948,
                -0.1042,
                0.4166,
                0.908,
                0.8606,
                -0.5711,
                0.155,
                0.4466,
                0.9901,
                0.8549,
                0.1194,
                0.9903,
                0.4105,
                -0.0665,
                -0.1746,
                0.4678,
                0.1658,
                2.0759,
            ],
            "answer": 0.871,
            "suggest": 0.355,
        }
    ),
}


def model_for(features: Mapping[str, float]) -> ConfidenceModel | None:
    """The calibrated model matching the dense configuration that produced `features`."""
    models = tuple(sorted(k for k in ("e5", "use") if f"{k}_top_cos" in features))
    return _MODELS.get(models)


def decide(features: Mapping[str, float]) -> tuple[Band, float]:
    """Band and probability for one Ranking's features."""
    model = model_for(features)
    if model is None:
        return Band.SUGGEST, 0.0  # uncalibrated configuration: never answer outright
    return model.band(features), model.probability(features)
