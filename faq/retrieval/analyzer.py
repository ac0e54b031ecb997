"""Japanese morphological analysis: content lemmas (orthographic variants unified by the
dictionary: 空家→空き家, 引越し→引っ越し, リホーム→リフォーム) and the kana reading of the
whole text (so all-hiragana queries meet kanji entries).

fugashi + unidic-lite was chosen over SudachiPy (core) and janome on localgovFAQ: best BM25
quality (SR@1 0.455 vs 0.451 / 0.413), fastest load, and its dictionary is memory-mapped
(file-backed pages, shared between processes) instead of ~80 MB of private heap. See
bench/README.md. If the analyser cannot be imported, a character-bigram stand-in keeps the
bot answering (worse, and logged once)."""

from __future__ import annotations

import gc
import importlib
import logging
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .mapped import Releaser, mappings_of
from .normalize import (
    english_terms,
    english_words,
    fold,
    reading_key,
    stem_en,
    to_katakana,
)

log = logging.getLogger(__name__)

_CONTENT_POS = frozenset({"名詞", "動詞", "形容詞", "形状詞", "副詞", "接頭辞", "接尾辞"})
# Lemmas that carry no topic in a question to a city ("教えてください", "したいのですが"); they
# would only add noise to BM25 because user queries use them far more often than entries do.
_STOP_LEMMAS = frozenset(
    """為る 有る 居る 成る 出来る 言う 思う 事 物 良い 下さる 頂く
    欲しい 教える 知る 分かる 貰う 呉れる 様 其の 此の 何 方 的 さん
    頂ける 致す 有り難い 御座る 御 為 時 場合 いい 今 ください ござる
    良う 問う 合わせる 聞く 尋ねる 伺う 置く 仕舞う 見る 行く 来る""".split()  # noqa: SIM905
)
# unidic-lite's default output: surface, pronunciation, lemma reading, lemma, pos, conjugation
# type and form, accent. The pronunciation (not the lemma reading) is what a person typing kana
# writes for this very word form (空き -> アキ, not アク).
_MECAB_FIELDS = 8
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Analysis:
    terms: list[str]  # content lemmas + stemmed English words, in text order
    reading: str  # reading key of the whole text (katakana, variants folded)


class Analyzer(Protocol):
    name: str

    def analyse(self, text: str) -> Analysis: ...

    def without(self, text: str, drop: Collection[str]) -> str:
        """`text` with the words whose lemma (or stemmed English form) is in `drop` left out:
        the question minus what the top entry does not cover (features: red_*)."""
        ...


def _join(pieces: list[str]) -> str:
    out = ""
    for piece in pieces:
        if not piece:
            continue
        if out and (piece[0].isascii() or out[-1].isascii()):
            out += " "
        out += piece
    return out


def _without_english(surface: str, drop: Collection[str]) -> str:
    return " ".join(w for w in english_words(surface) if stem_en(w) not in drop)


# MeCab maps unidic-lite's dictionary (sys.dic 188 MB, matrix.bin 72 MB) and every new word
# faults in the pages around it: after 568 varied questions ~110 MB of it was resident, enough
# to push a web process past 300 MB. Those pages are clean page cache shared by every process;
# giving them back every this many parses costs ~0.006 ms a parse on average.
RELEASE_EVERY = 50
_DICTIONARY_FILES = ("sys.dic", "matrix.bin")


class FugashiAnalyzer:
    name = "fugashi+unidic-lite"

    def __init__(self) -> None:
        fugashi: Any = importlib.import_module("fugashi")
        # Fail here, not on first parse, if it is missing.
        unidic: Any = importlib.import_module("unidic_lite")
        files = [Path(unidic.DICDIR) / name for name in _DICTIONARY_FILES]
        gc.collect()  # an old tagger's mappings go now, not while this one maps (dense.py)
        before = [mappings_of(f) for f in files]
        self._tagger: Any = fugashi.Tagger()
        # Only this tagger's own mappings (new since it was made): they live as long as it
        # does, so a release never touches memory that another object reuses.
        self._releasers = [
            Releaser(start, end, 0, end - start)
            for f, old in zip(files, before, strict=True)
            for start, end in mappings_of(f) - old
        ]
        self._parses = 0

    def _rows(self, folded: str) -> Iterator[list[str]]:
        """The tagger's columns for each token, padded to _MECAB_FIELDS. Reading its text
        output is ~4x faster than touching node.feature per token."""
        out: str = self._tagger.parse(_WS.sub(" ", folded))
        self._parses += 1
        if self._parses % RELEASE_EVERY == 0:
            for release in self._releasers:
                release()
        for line in out.split("\n"):
            if line and line != "EOS":
                cols = line.split("\t")
                yield cols + [""] * (_MECAB_FIELDS - len(cols))

    def analyse(self, text: str) -> Analysis:
        folded = fold(text)
        terms: list[str] = []
        readings: list[str] = []
        for cols in self._rows(folded):
            surface, pron, lemma, pos = cols[0], cols[1], cols[3], cols[4]
            if surface.isascii():
                continue  # English words are handled by english_terms() below
            readings.append(pron or to_katakana(surface))
            major = pos.split("-", 1)[0]
            if major not in _CONTENT_POS or pos.startswith("名詞-数詞"):
                continue
            lemma = (lemma or surface).split("-", 1)[0]  # 'バンク-bank' -> 'バンク'
            if lemma and lemma not in _STOP_LEMMAS:
                terms.append(lemma)
        terms.extend(english_terms(folded))
        return Analysis(terms, reading_key("".join(readings)))

    def without(self, text: str, drop: Collection[str]) -> str:
        pieces: list[str] = []
        for cols in self._rows(fold(text)):
            surface, lemma = cols[0], cols[3].split("-", 1)[0]
            if surface.isascii():
                pieces.append(_without_english(surface, drop))
            elif lemma not in drop and surface not in drop:
                pieces.append(surface)
        return _join(pieces)


class CharAnalyzer:
    """Fallback without a dictionary: kanji/kana character bigrams stand in for lemmas."""

    name = "char-bigram (no Japanese analyser installed)"

    def analyse(self, text: str) -> Analysis:
        folded = fold(text)
        ja = "".join(c for c in folded if not c.isascii())
        terms = [ja[i : i + 2] for i in range(len(ja) - 1)]
        terms.extend(english_terms(folded))
        return Analysis(terms, reading_key(ja))

    def without(self, text: str, drop: Collection[str]) -> str:
        folded = fold(text)
        for term in drop:
            if not term.isascii():
                folded = folded.replace(term, "")
        return _join([p if not p.isascii() else _without_english(p, drop) for p in folded.split()])


def load_analyzer() -> Analyzer:
    try:
        return FugashiAnalyzer()
    except Exception as exc:  # ImportError, or a broken dictionary install
        log.warning(
            "faq.retrieval: Japanese analyser unavailable (%s); falling back to character "
            "bigrams, matching quality will drop. Install fugashi and unidic-lite.",
            exc,
        )
        return CharAnalyzer()
