"""PostgreSQL stopped (`pg_ctl stop -m immediate`, a crash) and started again under webhook
load, on a throwaway cluster of this test's own (the machine's shared server is never
touched): requests fail cleanly with 503 while it is down, LINE's redeliveries then go
through, every event is answered exactly once, and the web process never restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.storage import migrate
from bot.storage.db import create_engine
from tests.channels.conftest import line_body, line_event, sign
from tests.conftest import Clock
from tests.delivery.helpers import BroadcastFake
from tests.faults.processes import LINE_SECRET, WebProcess, free_port, wait_for
from tests.faults.test_kill_web import answers_to

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))


def _cluster_reason() -> str | None:
    if not (PG_BIN / "initdb").exists():
        return f"no PostgreSQL server binaries at {PG_BIN} (set PG_BIN) for a throwaway cluster"
    if os.geteuid() != 0:
        return "a throwaway PostgreSQL cluster is started as the postgres user: needs root"
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "no postgres system user to run a throwaway cluster"
    return None


@dataclass
class Cluster:
    directory: Path
    port: int

    def _pg(self, command: str) -> None:
        subprocess.run(["su", "postgres", "-c", command], check=True, capture_output=True)

    def start(self) -> None:
        self._pg(
            f"{PG_BIN}/pg_ctl -D {self.directory}/data -l {self.directory}/log -w start "
            f"-o '-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off'"
        )

    def crash(self) -> None:
        self._pg(f"{PG_BIN}/pg_ctl -D {self.directory}/data -w stop -m immediate")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    reason = _cluster_reason()
    if reason:
        pytest.skip(reason)
    directory = Path(tempfile.mkdtemp(prefix="iju-pg-"))
    shutil.chown(directory, "postgres", "postgres")
    found = Cluster(directory, free_port())
    found._pg(f"{PG_BIN}/initdb -D {directory}/data -A trust -U postgres --no-sync")
    found.start()
    try:
        yield found
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            found.crash()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def fake() -> Iterator[BroadcastFake]:
    platform = BroadcastFake()
    with platform.running():
        yield platform


class Line:
    def __init__(self, web: WebProcess) -> None:
        self.web = web
        self.statuses: list[int] = []
        self.bodies: list[str] = []
        self.clock = Clock(datetime.now(UTC))
        self.events: list[dict[str, Any]] = []

    def event(self, n: int) -> bytes:
        self.clock.now = datetime.now(UTC)
        event = line_event(
            "text_message", self.clock, text="ごみの出し方を教えて", user=f"U{n % 4:032x}"
        )
        self.events.append(event)
        return line_body(event)

    async def post(self, body: bytes) -> int:
        headers = {"content-type": "application/json", "x-line-signature": sign(body, LINE_SECRET)}
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                f"{self.web.url}/webhooks/line", content=body, headers=headers
            )
        self.statuses.append(answer.status_code)
        self.bodies.append(answer.text)
        return answer.status_code

    async def ready(self) -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            return (await client.get(f"{self.web.url}/readyz")).status_code


async def test_postgres_crash_and_restart_under_load(
    cluster: Cluster, fake: BroadcastFake, tmp_path: Path
) -> None:
    await migrate.upgrade(engine := create_engine(cluster.url))
    await engine.dispose()
    web = WebProcess(cluster.url, fake, tmp_path)
    line = Line(web)
    web.start()
    try:
        await web.ready()
        # Accepted right before the crash: perhaps not yet answered when the database goes.
        before = [line.event(n) for n in range(8)]
        assert [await line.post(b) for b in before] == [200] * 8
        cluster.crash()
        during = [line.event(n) for n in range(8, 16)]
        refused = [b for b in during if await line.post(b) != 200]
        assert await line.ready() == 503
        assert refused, "every webhook was accepted with the database down"
        cluster.start()

        async def redelivered() -> bool:  # LINE retries what got no 200
            for body in list(refused):
                if await line.post(body) == 200:
                    refused.remove(body)
            await asyncio.sleep(0.2)
            return not refused

        await wait_for("LINE's redeliveries to be accepted", redelivered, 60, web.log)
        after = [line.event(n) for n in range(16, 24)]
        assert [await line.post(b) for b in after] == [200] * 8
        assert await line.ready() == 200

        async def all_answered() -> bool:
            return all(answers_to(fake, e) for e in line.events)

        await wait_for("every event to be answered", all_answered, 60, web.log)
        assert web.alive() and web.starts == 1  # recovered without a restart
    finally:
        web.stop()

    assert set(line.statuses) <= {200, 503}  # never a 500
    assert not [b for b in line.bodies if "Traceback" in b or "Error" in b]
    answers = [set(answers_to(fake, e)) for e in line.events]
    assert [a for a in answers if len(a) != 1] == []  # each answered exactly once
    print(f"statuses: {line.statuses.count(200)} x 200, {line.statuses.count(503)} x 503")
