"""Questions the bot did not answer outright, grouped so staff see what to write next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import UnansweredQuestion
from faq.normalize import fold


async def grouped(
    session: AsyncSession, *, days: int = 30, limit: int = 100, now: datetime | None = None
) -> list[tuple[str, int, str | None]]:
    """(question as first asked, how many times, closest entry id), most asked first.
    Questions are grouped on their folded form, so 「空き家？」 and 「空き家?」 count together."""
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    rows = (
        await session.execute(
            select(UnansweredQuestion.text, UnansweredQuestion.best_entry_id)
            .where(UnansweredQuestion.created_at >= since)
            .order_by(UnansweredQuestion.created_at)
            .limit(50_000)
        )
    ).all()
    groups: dict[str, list[tuple[str, str | None]]] = {}
    for text, best in rows:
        groups.setdefault(fold(text), []).append((text, best))
    ranked = sorted(groups.values(), key=lambda g: -len(g))[:limit]
    return [(g[0][0], len(g), g[-1][1]) for g in ranked]


async def count_since(session: AsyncSession, since: datetime) -> int:
    total = await session.scalar(
        select(func.count())
        .select_from(UnansweredQuestion)
        .where(UnansweredQuestion.created_at >= since)
    )
    return int(total or 0)


async def room_for(session: AsyncSession, person_id: int, now: datetime, per_hour: int) -> bool:
    """Whether another unanswered question of this person fits in the last hour's share:
    the staff's list shows what many people ask, not one person (or script) repeating."""
    kept = await session.scalar(
        select(func.count())
        .select_from(UnansweredQuestion)
        .where(
            UnansweredQuestion.person_id == person_id,
            UnansweredQuestion.created_at > now - timedelta(hours=1),
        )
    )
    return int(kept or 0) < per_hour
