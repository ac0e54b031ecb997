"""Benchmark: one announcement to 100,000 LINE people and N Telegram chats, worker killed once.

    .venv/bin/python bench/broadcast.py [--line 100000] [--telegram 1000] [--kill-after 80]

Sets up a temporary SQLite database with the people (plus some who blocked the bot), starts
a failing fake platform in a second process (bench/broadcast_fake.py: every 25th multicast
429, every 28th 500; the same for sendMessage, 429 with retry_after=1), releases the
announcement into the outbox, then runs the worker (`Courier` with the real line-bot-sdk and
python-telegram-bot pushers) in a child process and SIGKILLs it once the fake has seen
--kill-after multicasts. A second worker starts with its clock moved past the stuck-row
grace (as a restarted worker finds them ten minutes later) and finishes the job. Reports wall
time, requests, duplicates per recipient (counted at the fake), Telegram pace, peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from linebot.v3.messaging import AsyncApiClient, AsyncMessagingApi, Configuration
from sqlalchemy import func, insert, select
from telegram import Bot
from telegram.request import HTTPXRequest

from bot.announcements import Segment, create_announcement, release_due
from bot.delivery import STUCK_AFTER, UNSURE, Courier
from bot.pushers import LinePusher, TelegramPusher
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory
from bot.storage.models import Delivery, Person

HERE = Path(__file__).resolve().parent
TG_TOKEN = "123456:bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stats(fake: str) -> dict[str, Any]:
    # On a loaded machine the fake's threaded server now and then drops a connection
    # (RemoteDisconnected); a lost poll must not end the bench and kill the fake with it.
    for attempt in range(5):
        try:
            with urllib.request.urlopen(f"{fake}/__stats", timeout=10) as answer:
                return dict(json.loads(answer.read()))
        except (OSError, http.client.HTTPException):
            if attempt == 4:
                raise
            time.sleep(0.2)
    raise AssertionError("unreachable")


def hwm_mb(pid: int) -> float:
    """Peak RSS of a running process (VmHWM), readable until it is killed."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- the worker (child process) ---------------------------------------------------------------
async def worker(db_url: str, fake: str, offset_s: float, max_s: float) -> None:
    """Send the outbox until nothing is left, on a clock shifted by offset_s."""
    engine = create_engine(db_url)
    sessions = session_factory(engine)
    client = AsyncApiClient(Configuration(host=fake, access_token="bench"))
    bot = Bot(TG_TOKEN, base_url=f"{fake}/bot", request=HTTPXRequest(connection_pool_size=32))
    await bot.initialize()

    def clock() -> datetime:
        return datetime.now(UTC) + timedelta(seconds=offset_s)

    pushers = {"line": LinePusher(AsyncMessagingApi(client)), "telegram": TelegramPusher(bot)}
    courier = Courier(sessions, pushers, clock)
    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        await courier.send_due()
        async with sessions() as session:
            left = await session.scalar(
                select(func.count()).select_from(Delivery)
                .where(Delivery.status.in_(("pending", "sending")))
            )  # fmt: skip
        if not left:
            break
        await asyncio.sleep(0.5)  # rows waiting for their backoff (a 500 from Telegram)
    await bot.shutdown()
    await client.close()
    await engine.dispose()


# --- the bench (parent) --------------------------------------------------------------------
async def prepare(db_url: str, n_line: int, n_tg: int) -> float:
    engine = create_engine(db_url)
    await migrate.upgrade(engine)
    sessions = session_factory(engine)
    now = datetime.now(UTC)
    people: list[dict[str, Any]] = [
        {"channel": "line", "platform_user_id": f"U{i:032x}", "language": "en" if i % 10 == 0
         else "ja", "reachable": i % 97 != 0, "created_at": now, "last_seen_at": now}
        for i in range(n_line)
    ] + [
        {"channel": "telegram", "platform_user_id": str(10_000_000 + i), "language": "ja",
         "reachable": True, "created_at": now, "last_seen_at": now}
        for i in range(n_tg)
    ]  # fmt: skip
    async with sessions() as session, session.begin():
        for start in range(0, len(people), 5000):
            await session.execute(insert(Person), people[start : start + 5000])
    async with sessions() as session, session.begin():
        await create_announcement(
            session, staff_id=None, text_ja="移住フェアのお知らせ：12月14日に開催します。",
            text_en="Migration fair on 14 December.", link_label="詳しく",
            link_url="https://example.jp/fair", segment=Segment(), send_at=None, now=now,
        )  # fmt: skip
    started = time.perf_counter()
    await release_due(sessions, now)
    elapsed = time.perf_counter() - started
    async with sessions() as session:
        reached = await session.scalar(select(func.count()).select_from(Person).where(
            Person.reachable.is_(True)))  # fmt: skip
    print(f"release: {reached} reachable people -> outbox in {elapsed:.2f} s", flush=True)
    await engine.dispose()
    return elapsed


async def count_unsure(db_url: str) -> int:
    """Telegram rows in flight at the kill: not resent (at-most-once), left for staff."""
    engine = create_engine(db_url)
    async with session_factory(engine)() as session:
        n = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.error == UNSURE)
        )
    await engine.dispose()
    return int(n or 0)


def spawn(db_url: str, fake: str, offset: float, max_s: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", db_url, fake, str(offset), str(max_s)]
    )


def run(args: argparse.Namespace) -> int:
    tmp = tempfile.mkdtemp(prefix="broadcast-bench-")
    db_url = f"sqlite+aiosqlite:///{tmp}/bench.sqlite3"
    port = free_port()
    fake = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, str(HERE / "broadcast_fake.py"), str(port), "--max-seconds",
         str(args.max_seconds + 120)]
    )  # fmt: skip
    try:
        release_s = asyncio.run(prepare(db_url, args.line, args.telegram))
        n_line = sum(1 for i in range(args.line) if i % 97 != 0)
        started = time.perf_counter()
        first = spawn(db_url, fake, 0, args.max_seconds)
        peak = 0.0
        while True:  # kill the first worker mid-way through the LINE multicasts
            if first.poll() is not None:
                print("the first worker finished before the kill point", file=sys.stderr)
                return 1
            peak = max(peak, hwm_mb(first.pid))
            if stats(fake)["counts"].get("line_requests", 0) >= args.kill_after:
                break
            time.sleep(0.02)
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = time.perf_counter() - started
        second = spawn(db_url, fake, STUCK_AFTER.total_seconds() + 60, args.max_seconds)
        line_done = None
        while second.poll() is None:
            peak = max(peak, hwm_mb(second.pid))
            if line_done is None and stats(fake)["line_people"] >= n_line:
                line_done = time.perf_counter() - started
            time.sleep(0.05)
        total = time.perf_counter() - started
        final = stats(fake)
        if line_done is None and final["line_people"] >= n_line:
            line_done = total
        unsure = asyncio.run(count_unsure(db_url))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait()
    tg_span = (final["telegram_last"] or 0) - (final["telegram_first"] or 0)
    buckets = final["telegram_per_second"]
    requests = final["telegram_requests_per_second"]
    report = {
        "line_people": final["line_people"], "line_expected": n_line,
        "telegram_chats": final["telegram_chats"], "telegram_expected": args.telegram,
        "telegram_odd_keys": final["telegram_odd_keys"],
        "release_s": round(release_s, 2), "killed_at_s": round(killed_at, 2),
        "line_done_s": round(line_done or -1, 2), "total_s": round(total, 2),
        "requests": final["counts"],
        "duplicates_line": final["duplicates_line"],
        "duplicates_telegram": final["duplicates_telegram"],
        "telegram_unsure_not_resent": unsure,
        "telegram_delivered_per_s_median": statistics.median(buckets) if buckets else None,
        "telegram_requests_per_s_median": statistics.median(requests) if requests else None,
        "telegram_requests_per_s_mean": round(statistics.mean(requests), 2) if requests else None,
        "telegram_pace_whole_run": round((final["telegram_chats"] - 1) / tg_span, 2)
        if tg_span > 0 else None,
        "telegram_max_in_one_second": final["telegram_max_per_second"],
        "peak_rss_mb_worker": round(peak, 1),
    }  # fmt: skip
    print(json.dumps(report, indent=2))
    ok = (
        final["line_people"] == n_line
        and final["telegram_chats"] + unsure >= args.telegram
        and final["duplicates_line"] == 0
    )
    return 0 if ok else 1


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        db_url, fake, offset, max_s = sys.argv[2:6]
        asyncio.run(worker(db_url, fake, float(offset), float(max_s)))
        return 0
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--line", type=int, default=100_000)
    parser.add_argument("--telegram", type=int, default=1_000)
    parser.add_argument("--kill-after", type=int, default=80, help="multicasts seen")
    parser.add_argument("--max-seconds", type=float, default=900)
    return run(parser.parse_args())


if __name__ == "__main__":
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    sys.exit(main())
