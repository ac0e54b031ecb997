"""SQLAlchemy models: people, their conversation state, inbound event ids and the message log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes on every backend (SQLite drops the offset otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class Person(Base):
    """Someone who talks to the bot on one channel; (channel, platform_user_id) is their key."""

    __tablename__ = "people"
    __table_args__ = (
        UniqueConstraint("channel", "platform_user_id", name="uq_people_channel_user"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="ja")
    # Set once the person picks a language, so their messages no longer switch it.
    language_chosen: Mapped[bool] = mapped_column(default=False)
    audience: Mapped[str] = mapped_column(String(16), default="resident")  # resident | company
    consent: Mapped[bool] = mapped_column(default=False)
    reachable: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ConversationState(Base):
    """Where a person is in a conversation. `version` makes concurrent updates lose loudly."""

    __tablename__ = "conversation_states"

    person_id: Mapped[int] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    )
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 (SQLAlchemy reads it once)


class InboundEvent(Base):
    """Platform event ids already taken in, so a redelivered event is not handled twice."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("channel", "event_id", name="uq_inbound_channel_event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MessageLog(Base):
    """What was said, both ways, for staff and the handoff inbox; purged after a retention time."""

    __tablename__ = "message_log"
    __table_args__ = (Index("ix_message_log_person_time", "person_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    text: Mapped[str] = mapped_column(Text)
    intent: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UnansweredQuestion(Base):
    """A question the bot did not answer outright: what staff should write FAQ entries for."""

    __tablename__ = "unanswered_questions"
    __table_args__ = (Index("ix_unanswered_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="SET NULL"), nullable=True
    )
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(8))
    band: Mapped[str] = mapped_column(String(16))  # suggest | unknown
    best_entry_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    best_score: Mapped[float | None] = mapped_column(nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


_OPEN = text("status IN ('accepted', 'processed')")  # inbox.OPEN


class WebhookInbox(Base):
    """A platform event accepted at the webhook, kept until its replies have been sent.

    Written before the webhook answers 200, so an accepted event survives a crash: on start-up
    rows still `accepted` are processed and rows `processed` have their replies sent.
    """

    __tablename__ = "webhook_inbox"
    __table_args__ = (
        UniqueConstraint("channel", "event_id", name="uq_webhook_inbox_channel_event"),
        Index("ix_webhook_inbox_status", "status", "received_at"),
        # Over the open rows only, so a claim does not walk past every row already sent
        # (migration 0008): the oldest open rows, a person's earlier open events (order), and
        # the rows held under a lease.
        Index("ix_webhook_inbox_open", "channel", "id", postgresql_where=_OPEN, sqlite_where=_OPEN),
        Index(
            "ix_webhook_inbox_open_queue",
            "channel",
            "queue_key",
            "id",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
        Index(
            "ix_webhook_inbox_open_held",
            "channel",
            "claimed_until",
            postgresql_where=_OPEN,
            sqlite_where=_OPEN,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)  # the platform's event, as received
    status: Mapped[str] = mapped_column(
        String(16), default="accepted"
    )  # accepted|processed|sent|failed
    # The engine's replies, channel-neutral, stored in the engine's own transaction.
    replies: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Several processes share the rows: who works on one (`owner`) and until when
    # (`claimed_until`, renewed while it works). An expired lease is taken over by any process.
    queue_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Tour(Base):
    """A date people can sign up for: a migration-experience tour, a company site visit, or an
    online-meeting period. Managed by staff (CLI, later the console)."""

    __tablename__ = "tours"
    __table_args__ = (Index("ix_tours_status_start", "status", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # experience | site_visit | online_meeting
    title_ja: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    description_ja: Mapped[str] = mapped_column(Text, default="")
    description_en: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    place: Mapped[str] = mapped_column(String(300), default="")  # or the meeting link
    capacity: Mapped[int] = mapped_column(Integer)  # seats (people, not sign-ups)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed | cancelled
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Signup(Base):
    """One person's (or company's) booking on a tour, confirmed or on the waiting list."""

    __tablename__ = "signups"
    __table_args__ = (
        Index("ix_signups_tour_status", "tour_id", "status", "created_at"),
        Index("ix_signups_person", "person_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tour_id: Mapped[int] = mapped_column(ForeignKey("tours.id", ondelete="CASCADE"))
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    # The form's own key: a second 「確定」 (double tap, redelivered postback) finds this row
    # instead of creating another sign-up.
    form_key: Mapped[str] = mapped_column(String(64), unique=True)
    form: Mapped[str] = mapped_column(String(16))  # individual | company
    status: Mapped[str] = mapped_column(String(16))  # confirmed | waitlisted | cancelled
    seats: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)  # name, contact, party, interests...
    language: Mapped[str] = mapped_column(String(8), default="ja")
    attending: Mapped[bool] = mapped_column(default=False)  # said 「参加します」 to a reminder
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Reminder(Base):
    """A reminder due before a tour. Rows, not scheduler jobs: the worker claims due rows."""

    __tablename__ = "reminders"
    __table_args__ = (
        UniqueConstraint("signup_id", "kind", name="uq_reminders_signup_kind"),
        Index("ix_reminders_state_due", "state", "due_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    signup_id: Mapped[int] = mapped_column(ForeignKey("signups.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # e.g. "7d", "1d"
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(
        String(16), default="pending"
    )  # pending|queued|cancelled|dropped
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Delivery(Base):
    """The outbox: one message to one person (or the staff chat), sent by the worker.

    `key` is unique per purpose ("reminder:42", "promoted:7"), so handing the same thing to
    delivery twice is impossible; `retry_key` is what LINE deduplicates a retried push on.
    """

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_status_due", "status", "not_before"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    retry_key: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[int | None] = mapped_column(
        ForeignKey("people.id", ondelete="CASCADE"), nullable=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(128))  # platform user / chat id
    # LINE multicast: up to 500 user ids sent in one request under one retry key (then
    # `address` is "multicast"); None for a message to one person.
    recipients: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    announcement_id: Mapped[int | None] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE", name="fk_deliveries_announcement"),
        nullable=True,
        index=True,
    )
    replies: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # pending | sending | sent | failed | skipped (unreachable)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)


class StaffAccount(Base):
    """A city staff member who signs in to the console. Passwords are argon2 hashes."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="staff")  # staff | admin
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Every console cookie carries the epoch it was issued in; logout, a new password, a role
    # change or deactivation bump it, which ends every session of the account at once.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Where this member of staff may test-send an announcement ("telegram:12345"), set by an
    # admin: a test goes to staff's own phone, not to any address typed in.
    test_recipients: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")


class AuditEntry(Base):
    """Every staff action on personal data: who, what, on whom, when."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="SET NULL"), nullable=True
    )
    action: Mapped[str] = mapped_column(String(64))  # e.g. "person.export", "signup.view"
    subject: Mapped[str] = mapped_column(String(128), default="")  # e.g. "person:12"
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Announcement(Base):
    """A message staff send to a segment of people, now or at a scheduled time."""

    __tablename__ = "announcements"
    __table_args__ = (Index("ix_announcements_status_time", "status", "scheduled_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="SET NULL"), nullable=True
    )
    text_ja: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text, default="")
    link_label: Mapped[str] = mapped_column(String(40), default="")
    link_url: Mapped[str] = mapped_column(String(1000), default="")
    # {"channels": [...], "audiences": [...], "languages": [...], "interests": [...],
    #  "tour_id": int|None, "followed_since": iso|None}
    segment: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # draft | scheduled | sending | sent | cancelled
    status: Mapped[str] = mapped_column(String(16), default="draft")
    scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)  # unreachable when sent
    # Release progress: the last person id already handed to the outbox, and when the whole
    # segment had been (a release that died between batches resumes after this id).
    expanded_through: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    expanded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Handoff(Base):
    """A conversation handed to staff: the bot stays silent for the person until it ends."""

    __tablename__ = "handoffs"
    __table_args__ = (Index("ix_handoffs_status", "status", "last_activity_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="waiting")  # waiting|active|closed
    reason: Mapped[str] = mapped_column(String(32), default="asked")  # asked | unanswered
    staff_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(16), nullable=True)  # staff | idle


class PaceSlot(Base):
    """The next free send slot of one platform rate shared by every worker (bot/pacing.py):
    `next_at` in seconds since the epoch, moved forward by each booking."""

    __tablename__ = "pace_slots"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_at: Mapped[float] = mapped_column(Float)
