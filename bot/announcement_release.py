"""Turning a due announcement into outbox rows, resumable after a crash at any point.

The expansion walks the matching people in id order, a batch per transaction. Each batch
inserts its outbox rows and moves the announcement's `expanded_through` cursor in the same
transaction, guarded by the cursor it read, so a run that dies between batches resumes after
the last committed person, and two workers racing on one announcement cannot both commit a
batch (the unique Delivery keys would refuse the second anyway).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.messages import Link, Reply, reply_to_dict
from bot.segments import Segment, conditions
from bot.storage.models import Announcement, Delivery, Person

log = logging.getLogger(__name__)

MULTICAST_MAX = 500  # LINE multicast: user ids per request
EXPAND_BATCH = 10_000  # people per transaction
# Rows of these channels are collected by the person's next visit (the web chat polls);
# nobody may ever come back, so they do not keep an announcement "sending".
PULLED_CHANNELS = ("web",)


def announcement_replies(
    text_ja: str, text_en: str, link_label: str, link_url: str, lang: str
) -> list[Reply]:
    """What one person sees: the text in their language (Japanese when there is no English)
    and the link as a button where the platform has buttons."""
    text = text_en if lang == "en" and text_en.strip() else text_ja
    links = (Link(link_label, link_url),) if link_url else ()
    return [Reply(text.strip(), links=links)]


def reply_language(person_language: str, text_en: str) -> str:
    return "en" if person_language == "en" and text_en.strip() else "ja"


async def release_due(
    sessions: async_sessionmaker[AsyncSession], now: datetime, *, batch: int = EXPAND_BATCH
) -> int:
    """Start every scheduled announcement whose time has come, expand every started one
    into the outbox, and mark finished ones sent. Returns the outbox rows queued."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(Announcement)
            .where(Announcement.status == "scheduled", Announcement.scheduled_at <= now)
            .values(status="sending", started_at=now)
        )
    async with sessions() as session:
        started = list(
            await session.scalars(
                select(Announcement.id)
                .where(Announcement.status == "sending", Announcement.expanded_at.is_(None))
                .order_by(Announcement.id)
            )
        )
    queued = 0
    for announcement_id in started:
        queued += await expand(sessions, announcement_id, now, batch=batch)
    await finish_sent(sessions, now)
    return queued


async def expand(
    sessions: async_sessionmaker[AsyncSession],
    announcement_id: int,
    now: datetime,
    *,
    batch: int = EXPAND_BATCH,
) -> int:
    """Queue the rest of one announcement, batch by batch, until everyone is queued."""
    queued = 0
    conflicts = 0
    while True:
        try:
            async with sessions() as session, session.begin():
                rows = await _expand_batch(session, announcement_id, now, batch)
        except (IntegrityError, OperationalError) as exc:
            # Another worker committed this batch first, or SQLite was busy: read the
            # cursor again and carry on from there.
            conflicts += 1
            if conflicts > 20:
                raise
            log.info("announcement %d: batch retried after %s", announcement_id, type(exc).__name__)
            continue
        if rows is None:
            return queued
        queued += rows


async def _expand_batch(
    session: AsyncSession, announcement_id: int, now: datetime, batch: int
) -> int | None:
    """One transaction's worth; None once the announcement is fully expanded (or was
    finished or cancelled meanwhile)."""
    ann = await session.get(Announcement, announcement_id)
    if ann is None or ann.status != "sending" or ann.expanded_at is not None:
        return None
    cursor = ann.expanded_through
    where = await conditions(session, Segment.from_json(ann.segment))
    people = (
        await session.execute(
            select(
                Person.id, Person.channel, Person.platform_user_id, Person.language,
                Person.reachable,
            )
            .where(*where, Person.id > cursor)
            .order_by(Person.id)
            .limit(batch)
        )
    ).all()  # fmt: skip
    if not people:
        await _advance(session, ann, cursor, values={"expanded_at": now})
        return None
    rows, reached, skipped = outbox_rows(ann, people, now)
    if rows:
        await session.execute(insert(Delivery), rows)
    await _advance(
        session,
        ann,
        cursor,
        values={
            "expanded_through": people[-1].id,
            "recipients": Announcement.recipients + reached,
            "skipped": Announcement.skipped + skipped,
        },
    )
    return len(rows)


async def _advance(
    session: AsyncSession, ann: Announcement, cursor: int, values: dict[str, Any]
) -> None:
    result = await session.execute(
        update(Announcement)
        .where(Announcement.id == ann.id, Announcement.expanded_through == cursor)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 1) != 1:
        # Someone else moved the cursor since we read it: drop this batch, read again.
        raise OperationalError("announcement cursor moved", None, Exception("cursor moved"))


def outbox_rows(
    ann: Announcement, people: Sequence[Any], now: datetime
) -> tuple[list[dict[str, Any]], int, int]:
    """Outbox rows for one batch of matching people (in id order): LINE in multicasts of up
    to 500 per language, one row per Telegram chat and per web-chat visitor. Returns the
    rows, the people they reach and the people skipped as unreachable."""
    replies = {
        lang: [reply_to_dict(r) for r in announcement_replies(
            ann.text_ja, ann.text_en, ann.link_label, ann.link_url, lang)]
        for lang in ("ja", "en")
    }  # fmt: skip
    rows: list[dict[str, Any]] = []
    line: dict[str, list[Any]] = defaultdict(list)
    reached = skipped = 0
    for person in people:
        if not person.reachable:
            skipped += 1
            continue
        reached += 1
        lang = reply_language(person.language, ann.text_en)
        if person.channel == "line":
            line[lang].append(person)
            continue
        key = f"ann:{ann.id}:{person.channel}:{person.id}"
        rows.append(
            _row(key, ann.id, person.channel, person.platform_user_id, replies[lang], now,
                 person_id=person.id)
        )  # fmt: skip
    for lang, group in line.items():
        for start in range(0, len(group), MULTICAST_MAX):
            chunk = group[start : start + MULTICAST_MAX]
            # Named by its first person: the same batch of the same people gets the same
            # key on a rerun, so the unique key refuses a second copy.
            key = f"ann:{ann.id}:line:{lang}:{chunk[0].id}"
            ids = [p.platform_user_id for p in chunk]
            rows.append(_row(key, ann.id, "line", "multicast", replies[lang], now, ids=ids))
    return rows, reached, skipped


def _row(
    key: str,
    announcement_id: int | None,
    channel: str,
    address: str,
    replies: list[dict[str, Any]],
    now: datetime,
    *,
    person_id: int | None = None,
    ids: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        # A fresh UUID kept with the row (not derived from the key): announcement ids start
        # again in a new database, and LINE would drop a new batch under a reused key.
        "retry_key": str(uuid.uuid4()),
        "person_id": person_id,
        "channel": channel,
        "address": address,
        "recipients": ids,
        "announcement_id": announcement_id,
        "replies": replies,
        "status": "pending",
        "attempts": 0,
        "not_before": now,
        "created_at": now,
    }


async def finish_sent(sessions: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Mark `sent` every expanded announcement with nothing left to push."""
    open_rows = (
        select(Delivery.id)
        .where(
            Delivery.announcement_id == Announcement.id,
            Delivery.status.in_(("pending", "sending", "pushing")),
            Delivery.channel.not_in(PULLED_CHANNELS),
        )
        .exists()
    )
    async with sessions() as session, session.begin():
        result = await session.execute(
            update(Announcement)
            .where(
                Announcement.status == "sending",
                Announcement.expanded_at.is_not(None),
                ~open_rows,
            )
            .values(status="sent", finished_at=now)
            .execution_options(synchronize_session=False)
        )
    return int(getattr(result, "rowcount", 0) or 0)


def people_reached() -> Any:
    """SQL: how many people one outbox row reaches (a multicast's ids, else one). Keyed on
    the address: a non-multicast row may hold JSON null, which PostgreSQL cannot measure."""
    return case(
        (Delivery.address == "multicast", func.json_array_length(Delivery.recipients)),
        else_=1,
    )
