"""Answer, suggest, or say you don't know: a logistic model over Ranking.features estimates the
probability that the top entry is the right answer, and two thresholds cut it into three bands.

Calibrated on bench/data/faq_queries.jsonl (460 in-scope + 108 out-of-scope queries against the
sample knowledge base), one model per dense configuration because the features differ. The
thresholds were chosen for wrong answers <= 4 % and out-of-scope rejection >= 92 % on the
fitting data; bench/README.md gives the cross-fitted (held-out) figures. Refit with the lab
script described there when the knowledge base or the ranking weights change a lot."""

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


# Fitted by the calibration script (see bench/README.md, "confidence"); keyed by the dense
# models that were loaded, as in fusion.WEIGHTS_BY_MODELS.
_MODELS: dict[tuple[str, ...], ConfidenceModel] = {}


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
