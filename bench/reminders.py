"""Benchmark: schedule and deliver the reminders of 100,000 sign-ups.

    .venv/bin/python bench/reminders.py [-n 100000] [--database-url URL] [--line-fake URL]

Sets up a fresh database (a temporary SQLite file unless --database-url names a PostgreSQL
database — its tables are dropped and re-created), inserts N people with one confirmed
sign-up each, then measures:
  schedule  plan_reminders() for every sign-up (the code booking runs), 1,000 per transaction
  deliver   two workers ticking at once at the 7-day due time: reminders claimed, queued and
            pushed — to a counting pusher, or with --line-fake through the real line-bot-sdk
            to a fake LINE server (e.g. ../shared/webhook-bench/fakeplatform.py)
and reports duplicates (a person reminded twice for one kind: must be 0) and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select

from bot.config import load_settings
from bot.delivery import Courier
from bot.messages import Reply
from bot.runtime import booking_policy
from bot.scheduler import Worker
from bot.storage import migrate
from bot.storage.bookings import plan_reminders
from bot.storage.db import create_engine, session_factory
from bot.storage.models import Base, Person, Signup, Tour
from intents.i18n import Catalog

ROOT = Path(__file__).resolve().parent.parent


class CountingPusher:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        self.received[address] += 1


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--database-url")
    parser.add_argument("--line-fake", help="base URL of a fake LINE API to push to")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="iju-bench-")
    url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
    settings = load_settings(ROOT / "config.toml", environ={"DATABASE_URL": url})
    db = create_engine(settings.database.url)
    if not settings.database.is_sqlite:
        async with db.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
            await conn.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
    await migrate.upgrade(db)
    sessions = session_factory(db)
    policy = booking_policy(settings, Catalog.load())
    now = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)

    # --- set-up (not timed): people, tours, confirmed sign-ups --------------------------
    started = time.perf_counter()
    tours = 100
    async with sessions() as s, s.begin():
        start = now + timedelta(days=30)
        await s.execute(
            insert(Tour),
            [
                dict(kind="experience", title_ja=f"ツアー{t}", title_en=f"Tour {t}",
                     description_ja="", description_en="", starts_at=start,
                     ends_at=start + timedelta(days=3), place="小諸", capacity=args.n,
                     deadline=start - timedelta(days=1), status="open", created_at=now)
                for t in range(tours)
            ],
        )  # fmt: skip
        for lo in range(0, args.n, 10_000):
            hi = min(args.n, lo + 10_000)
            await s.execute(
                insert(Person),
                [
                    dict(channel="line", platform_user_id=f"U{i:032x}", language="ja",
                         language_chosen=False, audience="resident", consent=True,
                         reachable=True, created_at=now, last_seen_at=now)
                    for i in range(lo, hi)
                ],
            )  # fmt: skip
        tour_ids = (await s.scalars(select(Tour.id).order_by(Tour.id))).all()
        person_ids = (await s.scalars(select(Person.id).order_by(Person.id))).all()
        for lo in range(0, args.n, 10_000):
            await s.execute(
                insert(Signup),
                [
                    dict(tour_id=tour_ids[i % tours], person_id=person_ids[i],
                         form_key=f"bench-{i}", form="individual", status="confirmed", seats=1,
                         details={"name": "bench"}, language="ja", attending=False,
                         created_at=now, updated_at=now)
                    for i in range(lo, min(args.n, lo + 10_000))
                ],
            )  # fmt: skip
    print(f"set-up: {args.n:,} people and sign-ups in {time.perf_counter() - started:.1f} s")

    # --- schedule --------------------------------------------------------------------------
    started = time.perf_counter()
    tour_rows = {}
    async with sessions() as s:
        for tour in (await s.scalars(select(Tour))).all():
            tour_rows[tour.id] = tour
    last = 0
    while True:
        async with sessions() as s, s.begin():
            batch = (
                await s.scalars(
                    select(Signup).where(Signup.id > last).order_by(Signup.id).limit(1000)
                )
            ).all()
            if not batch:
                break
            for signup in batch:
                await plan_reminders(s, policy, signup, tour_rows[signup.tour_id], now)
            last = batch[-1].id
    schedule_s = time.perf_counter() - started
    print(f"schedule: {2 * args.n:,} reminders for {args.n:,} sign-ups in {schedule_s:.1f} s "
          f"({args.n / schedule_s:,.0f} sign-ups/s)")  # fmt: skip

    # --- deliver ---------------------------------------------------------------------------
    due = now + timedelta(days=23)  # the 7-day reminders' day, after 10:00 in Komoro
    clock = lambda: due  # noqa: E731
    counting = CountingPusher()
    pushers: dict[str, object] = {"line": counting}
    client = None
    if args.line_fake:
        from bot.pushers import line_pusher

        token = os.environ.get("LINE_CHANNEL_ACCESS_TOKEN", "bench")
        pusher, client = line_pusher(args.line_fake, token)
        pushers = {"line": pusher}
    quiet = (settings.reminders.quiet_from, settings.reminders.quiet_until)
    workers = [
        Worker(sessions, policy, quiet, Courier(sessions, pushers, clock), clock)  # type: ignore[arg-type]
        for _ in range(2)
    ]
    started = time.perf_counter()
    results = await asyncio.gather(*(w.tick() for w in workers))
    deliver_s = time.perf_counter() - started
    if client is not None:
        await client.close()
    queued = sum(r.queued for r, _ in results)
    sent = sum(d.sent for _, d in results)
    retried = sum(d.retried for _, d in results)
    print(f"deliver: {queued:,} reminders queued, {sent:,} pushed ({retried} to retry) "
          f"in {deliver_s:.1f} s ({sent / deliver_s:,.0f}/s) by two workers at once")  # fmt: skip
    async with sessions() as s:
        from bot.storage.models import Delivery

        keys = (await s.scalars(select(Delivery.key))).all()
    per_key = Counter(keys)
    dup_rows = sum(c - 1 for c in per_key.values() if c > 1)
    dup_pushes = sum(c - 1 for c in counting.received.values() if c > 1)
    where = "the fake's record" if args.line_fake else "counted in-process"
    print(f"duplicates: {dup_rows} delivery rows, {dup_pushes} pushes to one person ({where})")
    print(f"peak RSS: {rss_mb():.0f} MB")
    await db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
