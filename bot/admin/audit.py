"""The audit log: every staff view of or action on personal data, by whom and on whom.

Entries name people by their row id ("person:12"), never by name or platform id, so the log
itself holds no personal data and survives a person's erasure.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import AuditEntry, StaffAccount


def record(
    session: AsyncSession,
    staff_id: int,
    action: str,
    subject: str,
    now: datetime,
    detail: str = "",
) -> None:
    session.add(
        AuditEntry(
            staff_id=staff_id, action=action, subject=subject, detail=detail[:500], created_at=now
        )
    )


async def recent(session: AsyncSession, limit: int = 200) -> list[tuple[AuditEntry, str]]:
    rows = (
        await session.execute(
            select(AuditEntry, StaffAccount.email)
            .outerjoin(StaffAccount, StaffAccount.id == AuditEntry.staff_id)
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    ).all()
    return [(entry, email or "-") for entry, email in rows]
