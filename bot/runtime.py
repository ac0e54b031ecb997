"""Everything one process needs, built from Settings and closed on exit (no import-time state)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.engine import Engine, utc_now
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory
from faq.kb import load_kb
from faq.matcher import FaqMatcher
from intents.base import Services
from intents.i18n import Catalog
from intents.registry import default_intents

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    engine: Engine

    async def aclose(self) -> None:
        await self.db.dispose()


def build_matcher(settings: Settings) -> FaqMatcher:
    kb = load_kb(settings.faq_dir)
    log.info("FAQ loaded: %d entries from %s", len(kb), settings.faq_dir)
    return FaqMatcher(
        kb,
        answer_threshold=settings.faq.answer_threshold,
        suggest_threshold=settings.faq.suggest_threshold,
    )


async def build_runtime(
    settings: Settings,
    *,
    clock: Callable[[], datetime] = utc_now,
    migrate_schema: bool | None = None,
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
        services = Services(
            matcher=build_matcher(settings),
            catalog=Catalog.load(),
            city_name={"ja": settings.city.name.ja, "en": settings.city.name.en},
            contact={"ja": settings.city.contact.ja, "en": settings.city.contact.en},
            suggestions=settings.faq.suggestions,
        )
    except BaseException:
        await db.dispose()
        raise
    sessions = session_factory(db)
    engine = Engine(
        sessions,
        services,
        default_intents(),
        default_language=settings.bot.default_language,
        clock=clock,
    )
    return Runtime(settings=settings, db=db, sessions=sessions, engine=engine)
