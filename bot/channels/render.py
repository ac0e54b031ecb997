"""Plain-text rendering shared by channels that cannot show buttons: choices become numbers."""

from __future__ import annotations

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
