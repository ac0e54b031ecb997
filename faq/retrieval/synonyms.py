"""Synonym/variant groups (faq/lexicon/synonyms.toml): every text that contains a word of a group
gets one extra search term for that group, on both the entry and the query side, so 学童 meets
放課後児童クラブ and テレワーク meets 在宅勤務 without rewriting either text."""

from __future__ import annotations

import re
import tomllib
from collections import defaultdict
from pathlib import Path

from .analyzer import Analysis, Analyzer
from .normalize import fold, to_katakana

DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "lexicon" / "synonyms.toml"
_MIN_READING = 4  # shorter kana readings occur by chance inside longer ones (アキヤ in ...ナアキヤ)


def _matcher(words: dict[str, set[str]]) -> re.Pattern[str] | None:
    """One regex finding every listed word at every position (lookahead: overlaps allowed);
    a single C-level scan instead of one substring test per word."""
    if not words:
        return None
    alternation = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return re.compile(f"(?=({alternation}))")


class Synonyms:
    def __init__(
        self,
        surfaces: dict[str, set[str]],
        readings: dict[str, set[str]],
        terms: dict[str, set[str]],
        groups: int,
    ) -> None:
        self._surfaces = surfaces  # folded katakana word -> group terms (substring match)
        self._readings = readings  # reading key -> group terms (substring of the reading)
        self._terms = terms  # analyser term / English stem phrase -> group terms (whole term)
        self._surface_re = _matcher(surfaces)
        self._reading_re = _matcher(readings)
        self._groups = groups

    @classmethod
    def load(cls, path: Path | None, analyzer: Analyzer) -> Synonyms:
        table = path or DEFAULT_TABLE
        surfaces: dict[str, set[str]] = defaultdict(set)
        readings: dict[str, set[str]] = defaultdict(set)
        terms: dict[str, set[str]] = defaultdict(set)
        if not table.exists():
            return cls({}, {}, {}, 0)
        with table.open("rb") as fh:
            data = tomllib.load(fh).get("synonyms", {})
        for head, variants in data.items():
            group = f"≡{head}"
            for raw in [head, *variants]:
                word = to_katakana(fold(str(raw)))
                a = analyzer.analyse(word)
                if word.isascii():
                    if a.terms:  # matched as a run of stemmed words, like the text's
                        terms[" ".join(a.terms)].add(group)
                    continue
                if len(word) >= 2:
                    surfaces[word].add(group)
                else:  # one kanji (雪, 車) would hit inside unrelated words: whole terms only
                    for t in a.terms:
                        terms[t].add(group)
                if len(a.reading) >= _MIN_READING:
                    readings[a.reading].add(group)
        return cls(dict(surfaces), dict(readings), dict(terms), len(data))

    def __len__(self) -> int:
        return self._groups

    def terms(self, text: str, analysis: Analysis) -> list[str]:
        """Group terms for a text whose analysis is given (the analysis is not repeated)."""
        if not self._groups:
            return []
        found: set[str] = set()
        if self._surface_re is not None:
            for w in self._surface_re.findall(to_katakana(fold(text))):
                found |= self._surfaces[w]
        if self._reading_re is not None:
            for w in self._reading_re.findall(analysis.reading):
                found |= self._readings[w]
        ts = analysis.terms
        for n in (1, 2, 3):  # whole terms and English phrases of up to three words
            for i in range(len(ts) - n + 1):
                hit = self._terms.get(ts[i] if n == 1 else " ".join(ts[i : i + n]))
                if hit:
                    found |= hit
        return sorted(found)
