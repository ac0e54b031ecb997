"""Answer, suggest, or say you don't know: a logistic model over Ranking.features estimates the
probability that the top entry is the right answer, and two thresholds cut it into three bands.

One model per set of dense models (the features differ), fitted by `python -m
faq.retrieval.calibrate --write` on bench/data/faq_queries.jsonl and stored in confidence.toml
next to this file, with the cross-validated figures it was chosen on (bench/README.md).

In the cascade (dense = "auto": lexical + USE first, e5 only when unsure) the first stage's
model also carries `cascade = (low, high)`: at or above `high` it answers without e5, below
`low` it says it does not know without e5, and in between the query goes on to e5."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

MODELS_FILE = Path(__file__).with_name("confidence.toml")


class Band(StrEnum):
    ANSWER = "answer"  # answer outright with the top entry
    SUGGEST = "suggest"  # 「もしかして…」: offer the 2-3 closest entries
    UNKNOWN = "unknown"  # say so and offer a person


# Features whose effect is multiplicative (counts, lengths, ranks) enter as log1p.
LOG_FEATURES = frozenset(
    {"q_chars", "query_terms", "oov_terms", "e5_rank_of_top", "use_rank_of_top", "lex_rank_of_top"}
)


# A key "en_<name>" is <name> for a query written mostly in Latin letters and 0 otherwise: the
# same signal means something else in English (unknown words are common: toddler, paperwork),
# so English queries get their own slope for it (one shared model, shrunk by the same L2).
ENGLISH_PREFIX = "en_"
ENGLISH_LATIN_RATIO = 0.5


def feature_value(features: Mapping[str, float], key: str, default: float) -> float:
    if key.startswith(ENGLISH_PREFIX):
        if features.get("q_latin_ratio", 0.0) <= ENGLISH_LATIN_RATIO:
            return 0.0
        key = key.removeprefix(ENGLISH_PREFIX)
    x = float(features.get(key, default))
    return math.log1p(max(x, 0.0)) if key in LOG_FEATURES else x


@dataclass(frozen=True)
class ConfidenceModel:
    keys: tuple[str, ...]
    mean: tuple[float, ...]  # of the (log-transformed) features, for standardising
    scale: tuple[float, ...]
    coef: tuple[float, ...]  # one per key, then the intercept
    answer: float  # probability at or above which the bot answers
    suggest: float  # at or above which it offers choices
    cascade: tuple[float, float] | None = None  # (low, high): see the module docstring

    def probability(self, features: Mapping[str, float]) -> float:
        z = self.coef[-1]
        for key, mu, sd, w in zip(self.keys, self.mean, self.scale, self.coef, strict=False):
            z += w * (feature_value(features, key, mu) - mu) / sd
        return 1.0 / (1.0 + math.exp(-max(min(z, 40.0), -40.0)))

    def band_of(self, p: float) -> Band:
        if p >= self.answer:
            return Band.ANSWER
        if p >= self.suggest:
            return Band.SUGGEST
        return Band.UNKNOWN

    def band(self, features: Mapping[str, float]) -> Band:
        return self.band_of(self.probability(features))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "keys": list(self.keys),
            "mean": [round(v, 6) for v in self.mean],
            "scale": [round(v, 6) for v in self.scale],
            "coef": [round(v, 5) for v in self.coef],
            "answer": round(self.answer, 4),
            "suggest": round(self.suggest, 4),
        }
        if self.cascade is not None:
            out["cascade"] = [round(v, 4) for v in self.cascade]
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ConfidenceModel:
        cascade = raw.get("cascade")
        return cls(
            keys=tuple(str(k) for k in raw["keys"]),
            mean=tuple(float(x) for x in raw["mean"]),
            scale=tuple(float(x) for x in raw["scale"]),
            coef=tuple(float(x) for x in raw["coef"]),
            answer=float(raw["answer"]),
            suggest=float(raw["suggest"]),
            cascade=(float(cascade[0]), float(cascade[1])) if cascade else None,
        )


def config_name(models: Sequence[str]) -> str:
    """ "lexical", "use", "e5", "e5+use": the key of a dense configuration in confidence.toml."""
    return "+".join(sorted(models)) or "lexical"


@cache
def load_models(path: Path = MODELS_FILE) -> Mapping[str, ConfidenceModel]:
    """Read once per process (the matcher calls this while it builds, never while it answers)."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: ConfidenceModel.from_dict(m) for name, m in raw["models"].items()}


def model_for_models(models: Sequence[str]) -> ConfidenceModel | None:
    return load_models().get(config_name(models))


def model_for(features: Mapping[str, float]) -> ConfidenceModel | None:
    """The calibrated model matching the dense configuration that produced `features`."""
    return model_for_models([k for k in ("e5", "use") if f"{k}_top_cos" in features])


def decide(features: Mapping[str, float]) -> tuple[Band, float]:
    """Band and probability for one Ranking's features."""
    model = model_for(features)
    if model is None:
        return Band.SUGGEST, 0.0  # uncalibrated configuration: never answer outright
    p = model.probability(features)
    return model.band_of(p), p


def dump_models(models: Mapping[str, ConfidenceModel], header: str) -> str:
    """confidence.toml's text (TOML, so that it ships with the package data like the FAQ)."""

    def value(v: Any) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return f'"{v}"' if isinstance(v, str) else repr(v)

    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name, model in models.items():
        lines += ["", f'[models."{name}"]']
        lines += [f"{k} = {value(v)}" for k, v in model.to_dict().items()]
    return "\n".join(lines) + "\n"
