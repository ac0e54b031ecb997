"""Text normalisation for matching: NFKC, width and case folding, one kana script."""

from __future__ import annotations

import re
import unicodedata

_KATAKANA_TO_HIRAGANA = {cp: cp - 0x60 for cp in range(0x30A1, 0x30F7)}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(
    r"[\s!-/:-@\[-`{-~、。，．・「」『』（）【】〔〕［］｛｝〈〉《》！？…‥〜～ー−―‐]+"
)


def clean(text: str) -> str:
    """What the bot keeps of a message: NFKC, no control or bidi characters, single spaces."""
    text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def printable(text: str) -> str:
    """The text as the person wrote it, minus control characters (PostgreSQL refuses NUL):
    what staff read in the conversation log."""
    return _CONTROL.sub(" ", text).strip()


def fold(text: str) -> str:
    """A key for fuzzy comparison: cleaned, case-folded, katakana as hiragana, no punctuation.
    Half-width katakana and full-width letters are already unified by NFKC in clean().
    """
    text = clean(text).casefold().translate(_KATAKANA_TO_HIRAGANA)
    return _PUNCT.sub(" ", text).strip()


def detect_language(text: str) -> str | None:
    """'ja' for Japanese script, 'en' for Latin words, None for emoji, digits and the like."""
    if _JAPANESE.search(text):
        return "ja"
    if "@" not in text and _LATIN_WORD.search(text):
        return "en"
    return None


def clear_language(text: str) -> str | None:
    """Like detect_language, but only when the text is plainly one language: some Japanese
    (kana or kanji, at least two characters), or at least two English words and no Japanese.
    A lone "OK", "Wi-Fi" or a name in Latin letters decides nothing."""
    japanese = len(_JAPANESE.findall(text))
    if japanese >= 2:
        return "ja"
    if japanese == 0 and "@" not in text and len(_LATIN_WORD.findall(text)) >= 2:
        return "en"
    return None
