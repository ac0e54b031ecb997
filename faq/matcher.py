"""Match a question against the knowledge base and decide: answer, suggest, or don't know.

Ranking is faq.retrieval's hybrid (lemmas, readings, synonyms, optional sentence
embeddings); the decision is its calibrated confidence, cut into three bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from faq.kb import Entry, KnowledgeBase
from faq.normalize import detect_language, fold
from faq.retrieval import Document, Retriever
from faq.retrieval.cascade import Cascade
from faq.retrieval.confidence import Band
from faq.retrieval.selfcal import Calibration, calibrate_for

__all__ = ["Band", "FaqMatcher", "Match", "MatchResult"]


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float  # the hybrid ranking score: higher is better, comparable within one query


@dataclass(frozen=True)
class MatchResult:
    query: str
    language: str | None
    matches: tuple[Match, ...]
    band: Band
    confidence: float = 0.0  # estimated probability that matches[0] is the right answer
    # the dense models the decision used: "use" when the cascade stopped before e5
    models: tuple[str, ...] = ()

    @property
    def answered(self) -> bool:
        return self.band is Band.ANSWER and bool(self.matches)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


def documents(kb: KnowledgeBase) -> list[Document]:
    return [
        Document(
            id=e.id,
            questions_ja=tuple(e.questions.get("ja", ())),
            questions_en=tuple(e.questions.get("en", ())),
            answer_ja=e.answer.get("ja", ""),
            answer_en=e.answer.get("en", ""),
        )
        for e in kb
    ]


class FaqMatcher:
    """Built once per knowledge base (embeddings come from the on-disk cache); match() does
    no I/O. Thresholds default to the calibrated ones of the loaded dense configuration;
    config.toml may override them (the final stage's).

    With `cascade` (dense = "auto" and both e5 and another model loaded), a query is first
    ranked without e5 (lexical + USE, ~4 ms); only when that stage's calibrated confidence is
    in its uncertain zone is e5 (~30 ms on one core) computed and the full hybrid decides."""

    def __init__(
        self,
        kb: KnowledgeBase,
        retriever: Retriever,
        *,
        answer_threshold: float | None = None,
        suggest_threshold: float | None = None,
        cascade: bool = False,
        calibration: Calibration | None = None,
    ) -> None:
        self.kb = kb
        self.retriever = retriever
        self.calibration = calibration
        self.cascade = Cascade(
            retriever,
            staged=cascade,
            answer_threshold=answer_threshold,
            suggest_threshold=suggest_threshold,
            calibration=calibration,
        )

    @classmethod
    def build(
        cls,
        kb: KnowledgeBase,
        *,
        dense: str = "auto",
        cache_dir: Path | None = None,
        synonyms: Path | None = None,
        answer_threshold: float | None = None,
        suggest_threshold: float | None = None,
        calibrate: bool = True,
    ) -> FaqMatcher:
        """`calibrate` (the default): align the confidence to this knowledge base from
        probes made of its own entries (faq/retrieval/selfcal.py; cached in cache_dir), so
        that the answer decision holds on a city's FAQ it was never fitted on. Thresholds
        given here (config.toml's) still win over the calibrated ones."""
        docs = documents(kb)
        retriever = Retriever.build(docs, cache_dir=cache_dir, dense=dense, synonyms=synonyms)
        # "auto" is the fast default: e5 only for the queries the first stage is unsure of;
        # naming the models ("e5+use") runs every model on every query.
        staged = dense == "auto"
        return cls(
            kb,
            retriever,
            answer_threshold=answer_threshold,
            suggest_threshold=suggest_threshold,
            cascade=staged,
            calibration=calibrate_for(retriever, docs, staged=staged) if calibrate else None,
        )

    def match(self, query: str, top: int = 5) -> MatchResult:
        lang = detect_language(query)
        if not fold(query) or top <= 0:
            return MatchResult(query, lang, (), Band.UNKNOWN)
        d = self.cascade.decide(query, top)
        matches = tuple(
            Match(entry, s.score)
            for s in d.ranking.ranked
            if (entry := self.kb.get(s.id)) is not None
        )
        if not matches:
            return MatchResult(query, lang, (), Band.UNKNOWN, models=d.models)
        return MatchResult(query, lang, matches, d.band, d.confidence, d.models)
