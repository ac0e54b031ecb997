"""rapidfuzz similarity between a short query and the entries' question strings: catches typos
and wrong kanji in keyword queries (リホーム, 空き屋 ばんく) that no analyser lemma recovers.
Long queries skip it: they carry enough words, and scoring 2,000 questions costs milliseconds."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz, process

from .bm25 import FloatArray
from .normalize import fold, to_katakana

MAX_QUERY_CHARS = 16
_PUNCT = re.compile(r"[\W_]+")


def _key(text: str) -> str:
    return _PUNCT.sub("", to_katakana(fold(text)))


class FuzzyQuestions:
    def __init__(self, questions: Sequence[str]) -> None:
        self._keys = [_key(q) for q in questions]

    def applies(self, query: str) -> bool:
        return 0 < len(_key(query)) <= MAX_QUERY_CHARS

    def scores(self, query: str, candidates: npt.NDArray[np.intp]) -> FloatArray:
        """Similarity to the candidate questions (others score 0): partial_ratio over all 2,000
        questions of localgovFAQ costs ~12 ms, over the lexical top 50 well under 1 ms."""
        out = np.zeros(len(self._keys), dtype=np.float32)
        q = _key(query)
        if not q or len(q) > MAX_QUERY_CHARS or not len(candidates):
            return out
        choices = [self._keys[int(i)] for i in candidates]
        m: Any = process.cdist([q], choices, scorer=fuzz.partial_ratio, workers=1)
        out[candidates] = np.asarray(m[0], dtype=np.float32) / 100.0
        return out

    def best_for(self, query: str, units: npt.NDArray[np.intp]) -> float:
        """Best plain similarity of the query to one entry's questions (a confidence feature)."""
        q = _key(query)
        if not q or not len(units):
            return 0.0
        return max(fuzz.ratio(q, self._keys[int(u)]) for u in units) / 100.0
