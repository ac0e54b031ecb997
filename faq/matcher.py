"""Match a question against the knowledge base and decide: answer, suggest, or don't know."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from rapidfuzz import fuzz, process

from faq.kb import Entry, KnowledgeBase
from faq.normalize import detect_language, fold


class Band(StrEnum):
    ANSWER = "answer"  # confident: answer with the best entry
    SUGGEST = "suggest"  # plausible: offer the closest entries as 「もしかして…」 choices
    UNKNOWN = "unknown"  # say we don't know and offer a person


@dataclass(frozen=True)
class Match:
    entry: Entry
    score: float  # 0..1, higher is better


@dataclass(frozen=True)
class MatchResult:
    query: str
    language: str | None
    matches: tuple[Match, ...]
    band: Band

    @property
    def answered(self) -> bool:
        return self.band is Band.ANSWER and bool(self.matches)

    @property
    def best(self) -> Match | None:
        return self.matches[0] if self.matches else None


class FaqMatcher:
    """Fuzzy matching of the folded query against every question phrasing of every entry.
    Built once per knowledge base; match() does no I/O."""

    def __init__(
        self, kb: KnowledgeBase, *, answer_threshold: float, suggest_threshold: float
    ) -> None:
        self.kb = kb
        self.answer_threshold = answer_threshold
        self.suggest_threshold = suggest_threshold
        self._keys: list[str] = []
        self._owners: list[Entry] = []
        for entry in kb:
            for phrasings in entry.questions.values():
                for q in phrasings:
                    self._keys.append(fold(q))
                    self._owners.append(entry)

    def match(self, query: str, top: int = 5) -> MatchResult:
        key = fold(query)
        lang = detect_language(query)
        if not key or top <= 0:
            return MatchResult(query, lang, (), Band.UNKNOWN)
        best: dict[str, Match] = {}
        hits = process.extract(key, self._keys, scorer=fuzz.ratio, limit=top * 8)
        for _text, score, index in hits:
            entry = self._owners[index]
            if entry.id not in best or best[entry.id].score < score / 100:
                best[entry.id] = Match(entry, score / 100)
        ranked = tuple(sorted(best.values(), key=lambda m: -m.score)[:top])
        return MatchResult(query, lang, ranked, self._band(ranked))

    def _band(self, ranked: tuple[Match, ...]) -> Band:
        if not ranked:
            return Band.UNKNOWN
        if ranked[0].score >= self.answer_threshold:
            return Band.ANSWER
        if ranked[0].score >= self.suggest_threshold:
            return Band.SUGGEST
        return Band.UNKNOWN
