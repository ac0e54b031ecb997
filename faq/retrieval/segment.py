"""Long, story-like messages: find the sentence(s) that ask something, so the sentence encoder
is not diluted by the story ("先月引っ越してきました。子どもが2人います。…保育園の空きは
ありますか？"). Lexical signals keep the whole message: its nouns still help."""

from __future__ import annotations

import re

_SPLIT = re.compile(r"(?<=[。！？!?\n])\s*")
_QUESTION = re.compile(
    r"([?？]|か[。.]?$|ですか|ますか|でしょうか|教えて|知りたい|ください|たい[。.]?$|どこ|いつ"
    r"|いくら|どう|何|なに|\b(how|what|where|when|can|is|are|do|does)\b)"
)
_MIN_SENTENCES = 3
_MIN_CHARS = 60


def question_focus(text: str) -> str:
    """The question-like sentences of a long message, or the message itself."""
    if len(text) < _MIN_CHARS:
        return text
    sentences = [s.strip() for s in _SPLIT.split(text) if s.strip()]
    if len(sentences) < _MIN_SENTENCES:
        return text
    asking = [s for s in sentences if _QUESTION.search(s.lower())]
    if not asking or len(asking) == len(sentences):
        return text
    return " ".join(asking)


def sentence_count(text: str) -> int:
    return max(1, len([s for s in _SPLIT.split(text) if s.strip()]))
