"""How long conversation messages are kept: the worker deletes older ones."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import MessageLog


async def purge_message_log(session: AsyncSession, now: datetime, days: int) -> int:
    """Delete messages older than `days`; returns how many went. Sign-ups, the audit log
    and unanswered-question counts are kept: only the words people exchanged expire."""
    if days < 1:
        raise ValueError("message_log_days must be at least 1")
    result = await session.execute(
        delete(MessageLog).where(MessageLog.created_at < now - timedelta(days=days))
    )
    return int(getattr(result, "rowcount", 0) or 0)
