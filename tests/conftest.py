"""Shared fixtures: settings on a fresh database (SQLite always, PostgreSQL when it answers),
the engine built the way production builds it, and a guard that fails any internet access."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings, load_settings
from bot.runtime import Runtime, build_runtime
from bot.runtime import faq_library as faq_library_for
from faq.library import FaqLibrary

# Under CI=true a skipped PostgreSQL, spec, browser or font test fails the run.
from tests.ci_required import pytest_runtest_makereport  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


# --- no internet --------------------------------------------------------------------------
_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    host = address[0] if isinstance(address, tuple) else address
    inet = self.family in (socket.AF_INET, socket.AF_INET6)
    loopback = isinstance(host, str) and (host.startswith("127.") or host in ("::1", "localhost"))
    if inet and not loopback:
        raise RuntimeError(f"tests must not reach the network (tried {host})")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


# --- clock --------------------------------------------------------------------------------
class Clock:
    """An injected clock that tests move by hand, so nothing ever sleeps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 24, 1, 0, tzinfo=UTC))


# --- databases ----------------------------------------------------------------------------
def _postgres_reason() -> str | None:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return None
    except OSError as exc:
        return f"PostgreSQL is not answering at 127.0.0.1:5432 ({exc})"


_PG_SKIP = _postgres_reason()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
        return
    if _PG_SKIP:
        pytest.skip(_PG_SKIP)
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+asyncpg", "postgresql")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE SCHEMA "{schema}"'))
    yield f"{PG_URL}?search_path={schema}"
    asyncio.run(run(f'DROP SCHEMA "{schema}" CASCADE'))


def make_settings(database_url: str, **faq: Any) -> Settings:
    settings = load_settings(ROOT / "config.toml", environ={"DATABASE_URL": database_url})
    if faq:
        settings = settings.model_copy(update={"faq": settings.faq.model_copy(update=faq)})
    return settings


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def faq_library() -> FaqLibrary:
    """One matcher for the whole run: loading the analyser and the embedding models takes
    seconds, and every runtime in the tests answers from the same sample knowledge base."""
    return faq_library_for(load_settings(ROOT / "config.toml", environ={}))


@pytest.fixture
async def runtime(
    settings: Settings, clock: Clock, faq_library: FaqLibrary
) -> AsyncIterator[Runtime]:
    rt = await build_runtime(settings, clock=clock, migrate_schema=True, library=faq_library)
    try:
        yield rt
    finally:
        await rt.aclose()
