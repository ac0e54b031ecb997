"""What the engine reads and writes for one event, in as few statements as it can.

Every webhook event runs these, so they are built once per database dialect with bind
parameters and reused: building a SQLAlchemy statement per call (and hashing it for the
compiled cache) cost more CPU than running it. Each function is one statement (one round
trip): dedupe, find-or-create the person, read state and open handoff, write state, log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Executable, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from bot.storage.handoffs import latest_open
from bot.storage.models import ConversationState, Handoff, InboundEvent, MessageLog, Person


@dataclass(frozen=True)
class PersonRow:
    """The person as one event sees them; changes go back through update_person()."""

    id: int
    channel: str
    platform_user_id: str
    language: str
    language_chosen: bool
    audience: str
    consent: bool
    reachable: bool


@dataclass(frozen=True)
class SavedState:
    data: dict[str, Any]
    version: int


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _upsert(dialect: str) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT (PostgreSQL and SQLite alike)."""
    return pg_insert if dialect == "postgresql" else sqlite_insert


@cache
def _first_time(dialect: str) -> Executable:
    stmt = _upsert(dialect)(InboundEvent).on_conflict_do_nothing(
        index_elements=["channel", "event_id"]
    )
    return stmt.returning(InboundEvent.id)  # type: ignore[no-any-return]


@cache
def _person(dialect: str, unfollow: bool) -> Executable:
    stmt = _upsert(dialect)(Person)
    seen: dict[str, Any] = {"last_seen_at": stmt.excluded.last_seen_at}
    if not unfollow:  # any other event shows the person can be reached again
        seen["reachable"] = True
    stmt = stmt.on_conflict_do_update(index_elements=["channel", "platform_user_id"], set_=seen)
    columns = [Person.__table__.c[f.name] for f in fields(PersonRow)]
    return stmt.returning(*columns)  # type: ignore[no-any-return]


@cache
def _state_and_handoff() -> Executable:
    # From the person's row, so a person without a state row still gets the handoff id.
    c = ConversationState
    return (
        select(c.data, c.version, latest_open(Handoff.id, bindparam("person_id")).scalar_subquery())
        .select_from(Person)
        .outerjoin(c, c.person_id == Person.id)
        .where(Person.id == bindparam("person_id"))
    )


@cache
def _state_update() -> Executable:
    c = ConversationState
    return (
        update(c)
        .where(c.person_id == bindparam("pid"), c.version == bindparam("seen_version"))
        .values(data=bindparam("new_data"), version=c.version + 1, updated_at=bindparam("now"))
    )


@cache
def _state_insert() -> Executable:
    return insert(ConversationState)


@cache
def _log_insert() -> Executable:
    return insert(MessageLog)


async def first_time(session: AsyncSession, channel: str, event_id: str, now: datetime) -> bool:
    """Record the platform's event id; False when it was recorded before (a redelivery).
    A copy arriving at the same moment waits for the first one's commit, then sees it."""
    params = {"channel": channel, "event_id": event_id, "received_at": now}
    result = await session.execute(_first_time(_dialect(session)), params)
    return result.first() is not None


async def person(session: AsyncSession, values: dict[str, Any], *, unfollow: bool) -> PersonRow:
    """Find the person, or create them with `values` (every column but the id), and mark
    them seen. On PostgreSQL the upsert also locks their row until commit, so a person's
    concurrent events queue here instead of racing (the state's version still catches
    anything that slips past; SQLite has one writer)."""
    row = (await session.execute(_person(_dialect(session), unfollow), values)).one()
    return PersonRow(*row)


async def update_person(session: AsyncSession, person_id: int, changes: dict[str, Any]) -> None:
    """What the turn changed in the person's profile (language, consent, reachable...)."""
    if changes:
        await session.execute(update(Person).where(Person.id == person_id).values(**changes))


async def state_and_handoff(
    session: AsyncSession, person_id: int
) -> tuple[SavedState | None, int | None]:
    """The person's conversation state (None before their first event) and the id of their
    open handoff, if any."""
    data, version, handoff_id = (
        await session.execute(_state_and_handoff(), {"person_id": person_id})
    ).one()
    saved = SavedState(dict(data or {}), version) if version is not None else None
    return saved, handoff_id


async def save_state(
    session: AsyncSession,
    person_id: int,
    saved: SavedState | None,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Write the new state. Raises StaleDataError when another event wrote it first (the
    engine retries on the fresh state); a first state written twice at once fails on the
    primary key (IntegrityError), which the engine retries the same way."""
    if saved is None:
        row = {"person_id": person_id, "data": data, "version": 1, "updated_at": now}
        await session.execute(_state_insert(), [row])
        return
    params = {"pid": person_id, "seen_version": saved.version, "new_data": data, "now": now}
    result = await session.execute(_state_update(), params)
    if getattr(result, "rowcount", 1) != 1:
        raise StaleDataError("conversation state changed under this event")


async def log_messages(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    if rows:
        await session.execute(_log_insert(), list(rows))
