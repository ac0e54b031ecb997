"""Telegram's pace across workers: N real `python -m bot worker` processes on PostgreSQL send
one announcement to C Telegram chats through the fake platform; prints the average rate and
the most sendMessage requests in any rolling second, by the fake's clock (target: <= 30).

usage: PYTHONPATH=. .venv/bin/python bench/pace_workers.py [--workers 2] [--chats 300]

Needs PostgreSQL at $TEST_PG_URL (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
works in a schema of its own, dropped afterwards. Each worker books its slots in the
shared `pace_slots` rate (bot/pacing.py); before that, each paced itself only and two
workers sent about 60 a second.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import asyncpg  # type: ignore[import-untyped]

import tests.faults.test_kill_worker as broadcast
from tests.conftest import PG_URL
from tests.delivery.helpers import BroadcastFake
from tests.faults.processes import BotProcess, wait_for


class Stamped(list[Any]):
    """The fake's request list, with the time each request arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.stamps: list[float] = []

    def append(self, item: Any) -> None:
        self.stamps.append(time.monotonic())
        super().append(item)


async def run(workers: int, chats: int) -> str:
    schema = f"pace_{uuid.uuid4().hex[:8]}"
    dsn = PG_URL.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    await conn.execute(f'CREATE SCHEMA "{schema}"')
    await conn.close()
    url = f"{PG_URL}?search_path={schema}"
    broadcast.LINE_PEOPLE, broadcast.TELEGRAM_CHATS = 0, chats
    await broadcast.prepare(url)  # people, one announcement released to the outbox
    fake = BroadcastFake()
    try:
        with fake.running():
            record = Stamped()
            fake.requests = record
            workdir = Path(mkdtemp(prefix="iju-pace-"))
            procs = [BotProcess(["worker", "--every", "0.5"], url, fake, workdir, f"worker{i}")
                     for i in range(workers)]  # fmt: skip
            for proc in procs:
                proc.start()
            try:

                async def done() -> bool:
                    return sum(1 for r in list(record) if r.path.endswith("/sendMessage")) >= chats

                await wait_for("every chat to be sent to", done, 300, procs[0].log)
            finally:
                for proc in procs:
                    proc.stop()
            stamps = sorted(
                t for t, r in zip(record.stamps, record, strict=True)
                if r.path.endswith("/sendMessage")
            )  # fmt: skip
    finally:
        conn = await asyncpg.connect(dsn)
        await conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await conn.close()
    most = max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps)
    span = stamps[-1] - stamps[0]
    return (
        f"workers={workers} chats={chats} sends={len(stamps)} span={span:.2f}s "
        f"rate={len(stamps) / span:.1f}/s max_in_any_second={most}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chats", type=int, default=300)
    args = parser.parse_args()
    print(asyncio.run(run(args.workers, args.chats)))


if __name__ == "__main__":
    main()
