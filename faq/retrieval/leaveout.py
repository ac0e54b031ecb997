"""Rank as if one question, or one whole entry, were not in the index, without building a
second index: the calibration probes of selfcal.py ask an entry's own question with that
question left out (would the entry still be found from its other wording and its answer?),
or with the whole entry left out (what does a near miss look like in this knowledge base?).

IndexView is the index as built; LeftOutView patches the signals and the per-entry sets the
confidence features read, for the one entry concerned. Exact for every per-question signal
(dense cosines, readings, fuzzy) and for that entry's BM25 scores, term set, text and reading
3-grams; approximate in that the BM25 idf and mean length stay those of the full index."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .bm25 import FloatArray, char_ngrams
from .normalize import fold

if TYPE_CHECKING:
    from .retriever import Query, Retriever

_READING_NGRAMS = (2, 3)  # as retriever._READING_NGRAMS


@dataclass(frozen=True)
class LeaveOut:
    entry: int  # index of the entry in Retriever.docs
    unit: int | None = None  # a question unit of that entry; None: the whole entry is left out


class IndexView:
    """The index as built: what Retriever.rank_stage reads per entry."""

    def __init__(self, r: Retriever) -> None:
        self.r = r

    def signals(self, q: Query, keys: Sequence[str]) -> Mapping[str, FloatArray]:
        return q.signals

    def termset(self, i: int) -> frozenset[str]:
        return self.r._doc_termsets[i]

    def text(self, i: int) -> str:
        return self.r._doc_texts[i]

    def units(self, i: int) -> npt.NDArray[np.intp]:
        return self.r._units_of[i]

    def sounds(self, i: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return self.r._sound_q[i], self.r._sound_qa[i]


def _hashed(grams: Sequence[str]) -> npt.NDArray[np.int64]:
    return np.unique(np.fromiter((hash(g) for g in grams), dtype=np.int64, count=len(grams)))


class LeftOutView(IndexView):
    def __init__(self, r: Retriever, leave: LeaveOut) -> None:
        super().__init__(r)
        self.leave = leave
        i = leave.entry
        if leave.unit is None:
            return
        self._units = np.asarray([u for u in r._units_of[i] if u != leave.unit], dtype=np.intp)
        left = Counter(r._doc_terms[i])
        left.subtract(r._unit_terms[leave.unit])
        self._bag = +left  # drops the zero counts
        self._termset = frozenset(self._bag)
        d = r.docs[i]
        gone = r.question_texts[leave.unit]
        texts = [t for t in (*d.questions_ja, *d.questions_en) if t != gone]
        self._text = fold(" ".join((*texts, d.answer_ja, d.answer_en)))
        sounds = [g for u in self._units for g in r._unit_sounds[int(u)]]
        self._sounds = (_hashed(sounds), _hashed(sounds + r._answer_sounds[i]))
        self._passages = [p for p in r._passages_of[i] if r._passage_heads[int(p)] != gone]

    def signals(self, q: Query, keys: Sequence[str]) -> Mapping[str, FloatArray]:
        i, r = self.leave.entry, self.r
        out = {name: s.copy() for name, s in q.signals.items()}
        if self.leave.unit is None:  # the entry is not there: last on every signal
            for s in out.values():
                s[i] = s.min()
            return out
        # a signal the entry no longer has any unit for (its only question left out) says
        # nothing either way: the mean (z = 0 in the fusion), not the worst score
        floor = {name: float(s.mean()) for name, s in out.items()}
        units, passages = self._units, self._passages
        out["lem_qa"][i] = r._lem_qa.score_bag(q.terms, q.groups, self._bag)
        if "sub_qa" in out:
            from .retriever import subwords  # a cycle at import time otherwise

            out["sub_qa"][i] = r._sub_qa.score_bag(
                subwords(q.analysis.terms), (), Counter(subwords(list(self._bag.elements())))
            )
        if "read_q" in out:
            grams = char_ngrams(q.analysis.reading, _READING_NGRAMS)
            per_unit = r._read_q.score(grams)
            out["read_q"][i] = per_unit[units].max() if len(units) else floor["read_q"]
        if "fuzzy_q" in out:
            per_unit = r._fuzzy.scores(q.text, units)
            out["fuzzy_q"][i] = per_unit[units].max() if len(units) else floor["fuzzy_q"]
        for d in r._dense:
            key = d.encoder.key
            if f"{key}_q" not in out:
                continue
            v = q.vectors[key]
            out[f"{key}_q"][i] = (d.questions[units] @ v).max() if len(units) else floor[f"{key}_q"]
            qa = f"{key}_qa"
            if qa in out:
                out[qa][i] = (d.passages[passages] @ v).max() if passages else floor[qa]
        return out

    def termset(self, i: int) -> frozenset[str]:
        return self._termset if self._is_entry(i) else super().termset(i)

    def text(self, i: int) -> str:
        return self._text if self._is_entry(i) else super().text(i)

    def units(self, i: int) -> npt.NDArray[np.intp]:
        return self._units if self._is_entry(i) else super().units(i)

    def sounds(self, i: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return self._sounds if self._is_entry(i) else super().sounds(i)

    def _is_entry(self, i: int) -> bool:
        return self.leave.unit is not None and i == self.leave.entry
