"""Which worker runs the scheduler: a PostgreSQL advisory lock elects exactly one.

APScheduler 3 is not safe with several schedulers on one job store, and two schedulers would
queue every reminder twice. Each worker process holds a dedicated connection and tries
`pg_try_advisory_lock`; the one that gets it schedules. The lock is session-level, so when
the leader dies its connection closes, PostgreSQL frees the lock and the next worker to
retry (every few seconds) takes over. All workers, leader or not, send the outbox: Courier
claims rows with FOR UPDATE SKIP LOCKED, so they share the work without double sends.

SQLite means one machine and, by the project's rules, one worker: there is no election.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

# Any fixed 64-bit number, the same in every worker: "iju-sched" in ASCII.
SCHEDULER_LOCK = 0x69_6A_75_2D_73_63_68_64


class Leadership:
    """One process's claim on the scheduler lock. `try_acquire` is one non-blocking step, so
    tests drive the election without sleeping; `serve` is the loop a worker runs."""

    def __init__(
        self, db: AsyncEngine, *, key: int = SCHEDULER_LOCK, retry_every: float = 5.0
    ) -> None:
        self.db = db
        self.key = key
        self.retry_every = retry_every
        self.elected = db.dialect.name != "postgresql"  # SQLite: always the one
        self._conn: AsyncConnection | None = None

    @property
    def needs_election(self) -> bool:
        return self.db.dialect.name == "postgresql"

    async def try_acquire(self) -> bool:
        """Leader now? Re-checks a held lock's connection, so a leader whose connection died
        (database restart) steps down instead of scheduling beside the new leader."""
        if not self.needs_election:
            return True
        try:
            if self._conn is None:
                self._conn = await self.db.connect()
            if self.elected:
                await self._conn.execute(text("SELECT 1"))
            else:
                got = await self._conn.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
                self.elected = bool(got)
            # The lock belongs to the session, not the transaction: end the transaction so the
            # connection is never left "idle in transaction".
            await self._conn.commit()
        except Exception as exc:  # the database went away: whatever we held is gone with it
            log.warning("scheduler election: database unreachable (%s)", type(exc).__name__)
            await self._drop()
            self.elected = False
        return self.elected

    async def release(self) -> None:
        """Give the lock up (clean shutdown), so another worker leads at its next retry."""
        if self._conn is not None and self.elected and self.needs_election:
            with contextlib.suppress(Exception):
                await self._conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
                await self._conn.commit()
        await self._drop()
        self.elected = not self.needs_election

    async def _drop(self) -> None:
        # Invalidate, not close: a closed connection goes back to the pool with its session
        # (and so possibly the lock) alive; this one must really end.
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    async def serve(
        self,
        stop: asyncio.Event,
        start: Callable[[], Callable[[], None]],
        *,
        follow: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """Until `stop` is set: while leader, keep `start()`'s scheduler running (its return
        value stops it); while not, run `follow()` (delivery only) every retry interval."""
        stop_scheduler: Callable[[], None] | None = None
        try:
            while not stop.is_set():
                leading = await self.try_acquire()
                if leading and stop_scheduler is None:
                    log.info("scheduler election: this worker leads the scheduler")
                    stop_scheduler = start()
                elif not leading and stop_scheduler is not None:
                    log.warning("scheduler election: lost the lock, scheduler stopped")
                    stop_scheduler()
                    stop_scheduler = None
                if not leading and follow is not None:
                    try:
                        await follow()
                    except Exception as exc:  # a DB hiccup must not end the worker
                        log.warning("delivery run failed: %s", type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_every)
        finally:
            if stop_scheduler is not None:
                stop_scheduler()
            await self.release()
