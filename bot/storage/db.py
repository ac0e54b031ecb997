"""Async engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

POOL_SIZE = 20


def create_engine(url: str, *, root: Path | None = None, **kwargs: Any) -> AsyncEngine:
    """Build the process's one engine. SQLite gets WAL and a busy timeout so the web
    process and the scheduler can write without 'database is locked' errors."""
    parsed = make_url(url)
    # A failed statement's error would otherwise print its parameters (a resident's name,
    # message, phone) into the traceback that uvicorn and the workers log.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            path = Path(database)
            if not path.is_absolute() and root is not None:
                path = root / path
            path.parent.mkdir(parents=True, exist_ok=True)
            parsed = parsed.set(database=str(path))
        engine = create_async_engine(parsed, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints instead of every commit, so an event no
            # longer costs an fsync. A crashed or killed process loses nothing; only a power
            # cut of the machine can drop the last commits (production runs PostgreSQL).
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    # Kept open: an answering process runs 16 engine turns at once (inbox.CONCURRENCY) beside
    # its claims, group commits and lease renewals. With SQLAlchemy's default of 5, the rest
    # were overflow connections, closed on return and opened again for the next event: a
    # PostgreSQL backend started per event cost more CPU and latency than the event itself
    # (bench/answering.py, 97 -> 139 answers/s). Processes that need fewer never open them.
    kwargs.setdefault("pool_size", POOL_SIZE)
    search_path = parsed.query.get("search_path")
    if isinstance(search_path, str):
        # asyncpg takes no search_path in the URL; let operators (and tests) name a schema.
        parsed = parsed.difference_update_query(["search_path"])
        kwargs.setdefault("connect_args", {}).setdefault("server_settings", {})["search_path"] = (
            search_path
        )
    return create_async_engine(parsed, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
