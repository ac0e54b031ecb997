"""The platform rates the workers share, booked in the database (bot/pacing.SlotBook).

One row per rate. A booking is one UPDATE ... RETURNING: PostgreSQL holds the row's lock
until the booking commits, and a concurrent booking then reads the moved `next_at`, so two
workers never get the same slot. SQLite, single-process, has one writer anyway.
"""

from __future__ import annotations

from sqlalchemy import case, literal, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.models import PaceSlot


class DatabaseSlots:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._known: set[str] = set()  # rows this process has seen exist

    async def reserve(self, name: str, count: int, interval: float, now: float) -> float:
        span = count * interval
        async with self.sessions() as session, session.begin():
            if name not in self._known:
                dialect = session.get_bind().dialect.name
                insert = pg_insert if dialect == "postgresql" else sqlite_insert
                await session.execute(
                    insert(PaceSlot)
                    .values(name=name, next_at=now)
                    .on_conflict_do_nothing(index_elements=["name"])
                )
            first = case((PaceSlot.next_at > now, PaceSlot.next_at), else_=literal(now))
            moved = await session.execute(
                update(PaceSlot)
                .where(PaceSlot.name == name)
                .values(next_at=first + span)
                .returning(PaceSlot.next_at)
            )
            next_at = float(moved.scalar_one())
        self._known.add(name)
        return next_at - span
