"""Announcements staff send to a segment of people: compose, count, preview, test, schedule,
cancel, release to the outbox, and report. The console pages call these functions.

An announcement is `scheduled` once created (for now or later); the worker's tick releases
it when its time comes (bot/announcement_release.py), which makes it `sending` until every
outbox row it made is done, then `sent`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.announcement_release import (
    announcement_replies,
    finish_sent,
    people_reached,
    release_due,
    reply_language,
)
from bot.channels import line as line_channel
from bot.channels import telegram as telegram_channel
from bot.channels.render import utf16_len
from bot.messages import Link, Reply, reply_from_dict, reply_to_dict
from bot.segments import (
    AUDIENCES,
    DELIVERABLE,
    LANGUAGES,
    RecipientCount,
    Segment,
    count_recipients,
)
from bot.storage.models import Announcement, Delivery, Person
from intents.i18n import Catalog

__all__ = [
    "AnnouncementError",
    "AnnouncementReport",
    "AnnouncementTexts",
    "RecipientCount",
    "Segment",
    "cancel_announcement",
    "count_recipients",
    "create_announcement",
    "finish_sent",
    "history",
    "preview",
    "release_due",
    "send_test",
    "take_web_replies",
]

# One announcement must fit one message on every platform: Telegram's 4,096 is the smaller
# limit (LINE allows 5,000 UTF-16 units), counted in UTF-16 units as both platforms do.
MAX_TEXT = telegram_channel.MAX_TEXT
MAX_LINK_LABEL = line_channel.MAX_LABEL  # a LINE button label; Telegram allows more
MAX_URL = 1000  # a LINE URI action


class AnnouncementError(ValueError):
    """Why staff's announcement cannot be accepted; str() is the Japanese sentence, `en`
    the English one."""

    def __init__(self, key: str, **values: object) -> None:
        catalog = Catalog.load()
        self.key = key
        self.ja = catalog.text(f"announcement.error.{key}", "ja", **values)
        self.en = catalog.text(f"announcement.error.{key}", "en", **values)
        super().__init__(self.ja)


@dataclass(frozen=True)
class AnnouncementTexts:
    """What staff wrote, before (or without) saving it: enough to preview."""

    text_ja: str
    text_en: str = ""
    link_label: str = ""
    link_url: str = ""


@dataclass(frozen=True)
class AnnouncementReport:
    id: int
    text_ja: str
    text_en: str
    status: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int  # people it was queued for
    delivered: int
    failed: int
    skipped: int  # unreachable: blocked or left, before or while sending
    pending: int  # still queued (or waiting for a web-chat visitor's next visit)
    segment: Segment


def validate(texts: AnnouncementTexts, segment: Segment) -> None:
    if not texts.text_ja.strip():
        raise AnnouncementError("text_required")
    for lang, text in (("ja", texts.text_ja), ("en", texts.text_en)):
        if utf16_len(text.strip()) > MAX_TEXT:
            raise AnnouncementError(
                f"text_too_long_{lang}", length=utf16_len(text.strip()), limit=MAX_TEXT
            )
    if texts.link_url or texts.link_label:
        if not 0 < len(texts.link_label.strip()) <= MAX_LINK_LABEL:
            raise AnnouncementError("link_label", limit=MAX_LINK_LABEL)
        parts = urlsplit(texts.link_url)
        if (
            parts.scheme != "https"
            or not parts.hostname
            or len(texts.link_url) > MAX_URL
            or any(c.isspace() for c in texts.link_url)
        ):
            raise AnnouncementError("link_url", limit=MAX_URL)
    for values, allowed in (
        (segment.channels, DELIVERABLE),
        (segment.audiences, AUDIENCES),
        (segment.languages, LANGUAGES),
    ):
        for value in values:
            if value not in allowed:
                raise AnnouncementError("segment", value=value)
    if segment.followed_since is not None and segment.followed_since.tzinfo is None:
        raise AnnouncementError("timezone")


async def create_announcement(
    session: AsyncSession,
    *,
    staff_id: int | None,
    text_ja: str,
    text_en: str,
    link_label: str,
    link_url: str,
    segment: Segment,
    send_at: datetime | None,
    now: datetime,
) -> Announcement:
    """Validate and store an announcement, scheduled for `send_at` (or now). The worker's
    next tick sends it once that time has come."""
    texts = AnnouncementTexts(text_ja.strip(), text_en.strip(), link_label.strip(),
                              link_url.strip())  # fmt: skip
    validate(texts, segment)
    if send_at is not None:
        if send_at.tzinfo is None:
            raise AnnouncementError("timezone")
        if send_at < now:
            raise AnnouncementError("send_at")
    ann = Announcement(
        created_by=staff_id,
        text_ja=texts.text_ja,
        text_en=texts.text_en,
        link_label=texts.link_label,
        link_url=texts.link_url,
        segment=segment.to_json(),
        status="scheduled",
        scheduled_at=send_at or now,
        created_at=now,
        recipients=0,
        skipped=0,
        expanded_through=0,
    )
    session.add(ann)
    await session.flush()
    return ann


async def cancel_announcement(session: AsyncSession, announcement_id: int, now: datetime) -> bool:
    """Cancel an announcement that has not started; False once it is sending or done. The
    status condition in the UPDATE settles a race with the worker starting it."""
    result = await session.execute(
        update(Announcement)
        .where(Announcement.id == announcement_id, Announcement.status == "scheduled")
        .values(status="cancelled", finished_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def preview(
    announcement_or_texts: Announcement | AnnouncementTexts, channel: str, lang: str
) -> list[Reply]:
    """What a person on `channel` speaking `lang` will see, message by message, after the
    platform's own limits (LINE's text split and button, Telegram's keyboard)."""
    a = announcement_or_texts
    replies = announcement_replies(
        a.text_ja, a.text_en, a.link_label, a.link_url, reply_language(lang, a.text_en)
    )
    if channel == "line":
        return _line_view(replies)
    if channel == "telegram":
        return [
            Reply(text, links=tuple(
                Link(b.text, b.url) for row in (kb.inline_keyboard if kb else ()) for b in row
                if b.url))
            for text, kb in telegram_channel.render(replies, 0)
        ]  # fmt: skip
    return replies


def _line_view(replies: list[Reply]) -> list[Reply]:
    out: list[Reply] = []
    for message in line_channel.render(replies):
        text = getattr(message, "text", None)
        if text is not None:
            out.append(Reply(text))
            continue
        actions = getattr(getattr(message, "template", None), "actions", None) or []
        links = tuple(Link(a.label, a.uri) for a in actions if getattr(a, "uri", None))
        if out:
            out[-1] = Reply(out[-1].text, links=links)
        else:
            out.append(Reply("", links=links))
    return out


async def send_test(
    session: AsyncSession,
    announcement_id: int,
    channel: str,
    address: str,
    now: datetime,
    *,
    lang: str | None = None,
) -> Delivery:
    """Queue one copy, marked as a test, to one address (staff's own LINE id, Telegram chat
    or web-chat visitor). Not counted in the announcement's figures."""
    if channel not in DELIVERABLE:
        raise AnnouncementError("test_channel")
    ann = await session.get(Announcement, announcement_id)
    if ann is None:
        raise LookupError(f"announcement {announcement_id} does not exist")
    person = await session.scalar(
        select(Person).where(Person.channel == channel, Person.platform_user_id == address)
    )
    language = reply_language(lang or (person.language if person else "ja"), ann.text_en)
    replies = announcement_replies(ann.text_ja, ann.text_en, ann.link_label, ann.link_url, language)
    prefix = Catalog.load().text("announcement.test_prefix", language)
    replies = [Reply(prefix + replies[0].text, links=replies[0].links)]
    delivery = Delivery(
        key=f"anntest:{announcement_id}:{uuid.uuid4()}",
        retry_key=str(uuid.uuid4()),
        person_id=person.id if person else None,
        channel=channel,
        address=address,
        replies=[reply_to_dict(r) for r in replies],
        status="pending",
        attempts=0,
        not_before=now,
        created_at=now,
    )
    session.add(delivery)
    await session.flush()
    return delivery


async def history(session: AsyncSession, *, limit: int = 100) -> list[AnnouncementReport]:
    """The latest announcements with how their outbox rows ended, newest first."""
    anns = list(
        await session.scalars(select(Announcement).order_by(Announcement.id.desc()).limit(limit))
    )
    if not anns:
        return []
    counts: dict[int, dict[str, int]] = {a.id: {} for a in anns}
    rows = await session.execute(
        select(Delivery.announcement_id, Delivery.status, func.sum(people_reached()))
        .where(Delivery.announcement_id.in_(list(counts)))
        .group_by(Delivery.announcement_id, Delivery.status)
    )
    for announcement_id, status, people in rows:
        counts[announcement_id][status] = int(people or 0)
    return [_report(a, counts[a.id]) for a in anns]


def _report(ann: Announcement, by_status: dict[str, int]) -> AnnouncementReport:
    return AnnouncementReport(
        id=ann.id,
        text_ja=ann.text_ja,
        text_en=ann.text_en,
        status=ann.status,
        scheduled_at=ann.scheduled_at,
        started_at=ann.started_at,
        finished_at=ann.finished_at,
        recipients=ann.recipients,
        delivered=by_status.get("sent", 0),
        failed=by_status.get("failed", 0),
        skipped=ann.skipped + by_status.get("skipped", 0),
        pending=sum(by_status.get(s, 0) for s in ("pending", "sending", "pushing")),
        segment=Segment.from_json(ann.segment),
    )


async def take_web_replies(session: AsyncSession, visitor: str, now: datetime) -> list[Reply]:
    """What the outbox holds for one web-chat visitor (announcements, staff replies), marked
    sent: the web chat calls this on its next poll, as it cannot be pushed to. One conditional
    UPDATE hands each row over once, even to two polls at the same moment (SQLite too)."""
    rows = (
        await session.execute(
            update(Delivery)
            .where(
                Delivery.channel == "web",
                Delivery.address == visitor,
                Delivery.status == "pending",
                Delivery.not_before <= now,
            )
            .values(status="sent", sent_at=now, attempts=Delivery.attempts + 1)
            .returning(Delivery.id, Delivery.replies)
            .execution_options(synchronize_session=False)
        )
    ).all()
    return [reply_from_dict(r) for _id, data in sorted(rows) for r in data]
