"""Scheduler election: one leader among several workers, and a quick takeover when it dies."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from bot.leader import Leadership
from bot.storage.db import create_engine
from bot.web import create_app
from faq.library import FaqLibrary
from tests.conftest import _PG_SKIP, PG_URL, make_settings

pg = pytest.mark.skipif(_PG_SKIP is not None, reason=_PG_SKIP or "")


@pytest.fixture
async def engines() -> AsyncIterator[Callable[[], AsyncEngine]]:
    """Engines standing for separate worker processes (each its own pool)."""
    made: list[AsyncEngine] = []

    def make() -> AsyncEngine:
        made.append(create_engine(PG_URL, root=Path(".")))
        return made[-1]

    yield make
    for engine in made:
        await engine.dispose()


def lock_key() -> int:
    # Advisory locks are per database, and other test runs may share it: a key of our own.
    return random.getrandbits(62)


async def eventually(step: Callable[[], Awaitable[bool]], within: float = 3.0) -> None:
    """Bounded wait for PostgreSQL to notice a closed session (it frees the lock then)."""
    deadline = asyncio.get_running_loop().time() + within
    while not await step():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pg
async def test_only_one_of_two_workers_leads(engines: Callable[[], AsyncEngine]) -> None:
    key = lock_key()
    first, second = Leadership(engines(), key=key), Leadership(engines(), key=key)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    assert await first.try_acquire()  # still the leader on the next round
    assert not await second.try_acquire()
    await first.release()
    await second.release()


@pg
async def test_a_new_leader_takes_over_when_the_leaders_connection_dies(
    engines: Callable[[], AsyncEngine],
) -> None:
    key = lock_key()
    db = engines()
    first, second = Leadership(engines(), key=key), Leadership(engines(), key=key)
    assert await first.try_acquire()
    assert not await second.try_acquire()
    async with db.connect() as admin:  # the leader's process dies: its session ends
        await admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks "
                "WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = :key"
            ),
            {"key": key},
        )
        await admin.commit()
    await eventually(second.try_acquire)
    # The old leader notices its connection is gone and does not schedule beside it.
    assert not await first.try_acquire()
    await first.release()
    await second.release()


@pg
async def test_a_clean_shutdown_hands_over_at_the_next_retry(
    engines: Callable[[], AsyncEngine],
) -> None:
    key = lock_key()
    first, second = Leadership(engines(), key=key), Leadership(engines(), key=key)
    assert await first.try_acquire()
    await first.release()
    assert await second.try_acquire()
    await second.release()


@pg
async def test_serve_runs_exactly_one_scheduler_and_fails_over(
    engines: Callable[[], AsyncEngine],
) -> None:
    key = lock_key()
    running: list[str] = []
    follows: list[str] = []

    def starter(name: str) -> Callable[[], Callable[[], None]]:
        def start() -> Callable[[], None]:
            running.append(name)
            return lambda: running.remove(name)

        return start

    def follower(name: str) -> Callable[[], Awaitable[None]]:
        async def follow() -> None:
            follows.append(name)

        return follow

    stops = {"a": asyncio.Event(), "b": asyncio.Event()}
    workers = {
        name: asyncio.create_task(
            Leadership(engines(), key=key, retry_every=0.01).serve(
                stops[name], starter(name), follow=follower(name)
            )
        )
        for name in stops
    }
    await eventually(lambda: _true(len(running) == 1 and len(follows) >= 2))
    leader = running[0]
    other = "b" if leader == "a" else "a"
    assert running == [leader] and other in follows and leader not in follows
    stops[leader].set()
    await workers[leader]
    await eventually(lambda: _true(running == [other]))
    stops[other].set()
    await workers[other]
    assert running == []


async def _true(value: bool) -> bool:
    return value


async def test_sqlite_has_no_election(tmp_path: Path) -> None:
    db = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", root=tmp_path)
    try:
        one, two = Leadership(db), Leadership(db)
        assert await one.try_acquire() and await two.try_acquire()
        stop = asyncio.Event()
        started: list[int] = []

        def start() -> Callable[[], None]:
            started.append(1)
            stop.set()
            return lambda: None

        await asyncio.wait_for(one.serve(stop, start), 2)
        assert started == [1]
    finally:
        await db.dispose()


@pytest.fixture
def own_database() -> Iterator[str]:
    """A database of its own: advisory locks are per database, and the scheduler's key is
    fixed, so a test run beside another one on `test` must not meet its lock."""
    import asyncpg

    name = f"t_lead_{uuid.uuid4().hex[:10]}"
    admin = PG_URL.replace("postgresql+asyncpg", "postgresql")

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pg
async def test_two_serve_with_worker_processes_run_one_scheduler(
    own_database: str, faq_library: FaqLibrary
) -> None:
    """`serve --with-worker` twice on one PostgreSQL (or beside a worker): one scheduler."""
    settings = make_settings(own_database)

    def app() -> Starlette:
        return create_app(
            settings, migrate_schema=True, library=faq_library, background_worker=True
        )

    first, second = app(), app()
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        assert first.state.leadership.elected
        assert not second.state.leadership.elected
    # the first stopped and let go: the next one to start leads
    third = app()
    async with third.router.lifespan_context(third):
        assert third.state.leadership.elected
