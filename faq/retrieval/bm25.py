"""A small BM25 index over pre-tokenised units, with an inverted index of numpy arrays so a query
costs one vector add per distinct query term (well under a millisecond for 2,000 entries)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


class BM25:
    def __init__(self, units: Sequence[Iterable[str]], *, k1: float = 1.2, b: float = 0.75) -> None:
        counts = [Counter(tokens) for tokens in units]
        self.size = len(counts)
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        mean_len = float(lengths.mean()) if self.size else 0.0
        avg = mean_len if mean_len > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths / avg)
        self._k1, self._b, self._avg = k1, b, avg
        postings: dict[str, tuple[list[int], list[int]]] = {}
        for unit, counter in enumerate(counts):
            for term, tf in counter.items():
                docs, tfs = postings.setdefault(term, ([], []))
                docs.append(unit)
                tfs.append(tf)
        self._index: dict[str, tuple[npt.NDArray[np.int32], FloatArray]] = {}
        self.idf: dict[str, float] = {}
        # what an unseen term would get: the most informative a term can be
        self.max_idf = math.log(1.0 + (self.size + 0.5) / 0.5)
        for term, (docs, tfs) in postings.items():
            df = len(docs)
            idf = math.log(1.0 + (self.size - df + 0.5) / (df + 0.5))
            self.idf[term] = idf
            d = np.asarray(docs, dtype=np.int32)
            freq = np.asarray(tfs, dtype=np.float64)
            weight = idf * freq * (k1 + 1.0) / (freq + norm[d])
            self._index[term] = (d, weight.astype(np.float32))

    def score(self, terms: Iterable[str], boost: Iterable[str] = ()) -> FloatArray:
        """BM25 of every unit; terms in `boost` count double (synonym-group terms: a matched
        phrase such as 学童保育 must outweigh the overlap of one of its words, 保育)."""
        boosted = set(boost)
        wanted = set(terms) | boosted
        hits = [(t, h) for t in wanted if (h := self._index.get(t)) is not None]
        if not hits:
            return np.zeros(self.size, dtype=np.float32)
        # One bincount over the concatenated postings: a per-term `scores[d] += w` costs a few
        # microseconds each, which adds up over the ~50 reading n-grams of a query.
        docs = np.concatenate([h[0] for _, h in hits])
        weights = np.concatenate([h[1] * 2.0 if t in boosted else h[1] for t, h in hits])
        return np.bincount(docs, weights, minlength=self.size).astype(np.float32)

    def score_bag(self, terms: Iterable[str], boost: Iterable[str], bag: Counter[str]) -> float:
        """The score one unit would get if its tokens were `bag` (idf and mean length kept):
        a unit with one of its questions taken out, for calibration probes (leaveout.py)."""
        boosted = set(boost)
        norm = self._k1 * (1.0 - self._b + self._b * sum(bag.values()) / self._avg)
        total = 0.0
        for t in set(terms) | boosted:
            tf = bag.get(t, 0)
            if tf:
                w = self.idf[t] * tf * (self._k1 + 1.0) / (tf + norm)
                total += 2.0 * w if t in boosted else w
        return total


def char_ngrams(text: str, sizes: tuple[int, ...] = (2, 3)) -> list[str]:
    """Character n-grams of a folded string, spaces removed: robust to segmentation errors,
    unknown words and compounds the analyser keeps whole (コワーキングスペース)."""
    s = "".join(text.split())
    grams: list[str] = []
    for n in sizes:
        grams.extend(s[i : i + n] for i in range(len(s) - n + 1))
    if len(s) < min(sizes):
        grams.append(s)
    return grams
