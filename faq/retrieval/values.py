"""The public value types of the retrieval core (kept free of any analyser or model import)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Document:
    """One FAQ entry, already loaded from the knowledge base by the caller."""

    id: str
    questions_ja: tuple[str, ...]
    questions_en: tuple[str, ...]
    answer_ja: str
    answer_en: str


@dataclass(frozen=True)
class Scored:
    id: str
    score: float


@dataclass(frozen=True)
class Ranking:
    ranked: list[Scored]  # best first, top-k
    # Signals for a confidence model (see features.py for the names and what each means).
    features: dict[str, float]
