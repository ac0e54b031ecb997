"""Plain-text rendering shared by channels that cannot show buttons: choices become numbers."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.messages import Reply


def numbered(replies: Sequence[Reply], start: int = 1) -> list[str]:
    """Each reply as text, its choices as numbered lines. Numbering runs across all replies
    in order, matching the engine, which maps a typed number back to the same choice."""
    blocks: list[str] = []
    n = start
    for reply in replies:
        lines = [reply.text]
        for choice in reply.choices:
            lines.append(f"  {n}. {choice.label}")
            n += 1
        lines.extend(f"  {link.label}: {link.url}" for link in reply.links)
        blocks.append("\n".join(lines))
    return blocks


# Sentence ends in Japanese and English; a split lands right after one of these when it can.
_SENTENCE_END = re.compile(r"(?<=[。！？!?．\n])|(?<=\.\s)")


def utf16_len(text: str) -> int:
    """Length as LINE and Telegram count it: UTF-16 code units (an emoji is 2)."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int) -> list[str]:
    """Cut text into pieces of at most `limit` UTF-16 code units, at sentence ends where
    possible, else at the limit (never inside a surrogate pair). Empty text gives []."""
    if utf16_len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    current = ""
    for sentence in (s for s in _SENTENCE_END.split(text) if s):
        while utf16_len(sentence) > limit:  # one sentence longer than a whole message
            if current:
                pieces.append(current)
                current = ""
            head = _cut(sentence, limit)
            pieces.append(head)
            sentence = sentence[len(head) :]
        if utf16_len(current) + utf16_len(sentence) > limit:
            pieces.append(current)
            current = ""
        current += sentence
    if current:
        pieces.append(current)
    return [p for p in (p.strip("\n") for p in pieces) if p]


def _cut(text: str, limit: int) -> str:
    """The longest prefix of text within `limit` UTF-16 units (code points stay whole)."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return text[:i]
    return text
