"""Everything one process needs, built from Settings and closed on exit (no import-time state)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.delivery import Courier, Pusher
from bot.engine import Engine, utc_now
from bot.scheduler import Worker
from bot.storage import migrate
from bot.storage.bookings import BookingPolicy
from bot.storage.db import create_engine, session_factory
from faq.kb import KnowledgeBase
from faq.library import FaqLibrary
from faq.matcher import FaqMatcher
from intents.base import Services
from intents.i18n import Catalog
from intents.registry import default_intents
from intents.understanding import CommandBook

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: Engine
    policy: BookingPolicy
    clock: Callable[[], datetime]
    # Channels that can send unprompted (reminders, announcements) register here.
    pushers: dict[str, Pusher] = field(default_factory=dict)

    def worker(self) -> Worker:
        reminders = self.settings.reminders
        courier = Courier(self.sessions, self.pushers, self.clock)
        quiet = (reminders.quiet_from, reminders.quiet_until)
        idle = timedelta(minutes=self.settings.staff.handoff_idle_minutes)
        days = self.settings.privacy.message_log_days
        return Worker(
            self.sessions, self.policy, quiet, courier, self.clock,
            handoff_idle=idle, message_log_days=days,
        )  # fmt: skip

    async def aclose(self) -> None:
        await self.db.dispose()


def matcher_builder(settings: Settings) -> Callable[[KnowledgeBase], FaqMatcher]:
    """How this deployment turns a knowledge base into a matcher (models, cache, synonyms)."""
    faq = settings.faq

    def build(kb: KnowledgeBase) -> FaqMatcher:
        log.info("FAQ loaded: %d entries from %s", len(kb), kb.directory)
        return FaqMatcher.build(
            kb,
            dense=faq.dense,
            cache_dir=settings.path(faq.cache_dir),
            synonyms=settings.path(faq.synonyms),
            answer_threshold=faq.answer_threshold,
            suggest_threshold=faq.suggest_threshold,
        )

    return build


def faq_library(settings: Settings) -> FaqLibrary:
    return FaqLibrary(settings.faq_dir, matcher_builder(settings))


def booking_policy(settings: Settings, catalog: Catalog) -> BookingPolicy:
    return BookingPolicy(
        tz=settings.bot.tz,
        reminder_days=settings.reminders.days_before,
        reminder_at=settings.reminders.at,
        staff_chat=settings.staff.telegram_chat_id,
        catalog=catalog,
    )


async def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate_schema: bool | None = None,
    library: FaqLibrary | None = None,
) -> Runtime:
    """Connect the database, load the FAQ and assemble the engine. The embedded SQLite
    database is migrated here so `make run` needs no separate step; PostgreSQL is migrated
    by the Procfile's release phase (`python -m bot migrate`), unless migrate_schema=True."""
    db = create_engine(settings.database.url, root=settings.root)
    try:
        if settings.database.is_sqlite if migrate_schema is None else migrate_schema:
            await migrate.upgrade(db)
        elif not await migrate.is_current(db):
            log.warning("database schema is not current: run `python -m bot migrate`")
        catalog = Catalog.load()
        services = Services(
            # Loading the models takes seconds: tests share one library between runtimes.
            library=library or faq_library(settings),
            catalog=catalog,
            city_name=settings.city.name.model_dump(),
            contact=settings.city.contact.model_dump(),
            tz=settings.bot.tz,
            privacy_notice=settings.signup.privacy_notice.model_dump(),
            suggestions=settings.faq.suggestions,
            resume_after_hours=settings.signup.resume_after_hours,
            commands=CommandBook(cache_dir=settings.path(settings.faq.cache_dir)),
        )
        # Index the commands now, not on the first person's message.
        services.commands.understander(services.matcher)
        policy = booking_policy(settings, catalog)
    except BaseException:
        await db.dispose()
        raise
    sessions = session_factory(db)
    engine = Engine(
        sessions,
        services,
        default_intents(),
        policy,
        default_language=settings.bot.default_language,
        audiences=settings.bot.audience,
        clock=clock,
        unanswered_per_hour=settings.staff.unanswered_per_person_per_hour,
    )
    return Runtime(
        settings=settings, db=db, sessions=sessions, engine=engine, policy=policy, clock=clock
    )
