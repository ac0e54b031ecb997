"""Sign-ups through `kill -9`: lost and doubled sign-ups and replies (issue 15's target: 0 lost,
0 doubled sign-ups, at most one doubled reply per kill).

    .venv/bin/python bench/crash_signups.py [--shapes procfile,single] [--people 30]
        [--kills 20] [--seed 1] [--json]

On PostgreSQL (a schema of its own in the `test` database, dropped afterwards), against a
fake LINE as strict as LINE (a reply token works once, a push retry key once:
tests/faults/platform.py), `people` residents each go through the whole individual sign-up
(15 steps, tests/faults/test_kill_web.py) at once. A person sends a step once the answer to
the previous one has reached them (or after ANSWER_WAIT seconds without one), as a person
who reads the form does; LINE redelivers a webhook until it gets a 200. Meanwhile `kills`
times, spread over the run, a random process gets SIGKILL at a random moment and is started
again at once:

- procfile: the Procfile's `web` (uvicorn, WEB_ANSWERS=0, port 8731) and one `answer`;
- single: one `serve --with-worker` (it answers its own webhooks, port 8732).

Counted from the fake and the database: sign-ups confirmed once, lost (no confirmed sign-up)
and doubled; replies that reached the person once, never (lost) and more than once
(doubled: a reply and a push, or two replies). This is a benchmark, not a test: it prints
figures and exits 0; bench/README.md keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.channels.line import retry_key  # noqa: E402
from bot.storage import migrate  # noqa: E402
from bot.storage.db import create_engine, session_factory  # noqa: E402
from bot.storage.models import Person, Signup  # noqa: E402
from bot.storage.tours import NewTour, add_tour  # noqa: E402
from tests.channels.conftest import line_body, line_event, sign  # noqa: E402
from tests.conftest import PG_URL, Clock  # noqa: E402
from tests.faults.platform import StrictFake  # noqa: E402
from tests.faults.processes import (  # noqa: E402
    LINE_SECRET,
    AcceptingWeb,
    BotProcess,
    WebProcess,
    answer_process,
)
from tests.faults.test_kill_web import signup_steps  # noqa: E402

PORTS = {"procfile": 8731, "single": 8732}
ANSWER_WAIT = 45.0  # seconds a person waits for an answer before typing on
START_WAIT = 90.0


@dataclass
class Figures:
    shape: str
    people: int
    kills: int
    events: int
    seconds: float
    signups_confirmed_once: int
    signups_lost: int
    signups_doubled: int
    replies_once: int
    replies_lost: int
    replies_doubled: int
    waited_out: int  # steps a person typed without having seen the previous answer


class Run:
    def __init__(self, shape: str, people: int, kills: int, seed: int, workdir: Path) -> None:
        self.shape, self.people, self.kills = shape, people, kills
        self.rng = random.Random(seed)
        self.workdir = workdir
        self.schema = f"crash_{uuid.uuid4().hex[:10]}"
        self.database_url = f"{PG_URL}?search_path={self.schema}"
        self.fake = StrictFake()
        self.events: list[dict[str, Any]] = []
        self.answered = 0
        self.waited_out = 0
        self.done = False
        self.progress = asyncio.Event()  # a person has moved on (or all are done)

    # --- the database -------------------------------------------------------------------
    async def prepare(self) -> int:
        admin = create_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        await admin.dispose()
        engine = create_engine(self.database_url)
        await migrate.upgrade(engine)
        start = datetime.now(UTC) + timedelta(days=30)
        async with session_factory(engine)() as session, session.begin():
            tour = await add_tour(
                session,
                NewTour("experience", "体験ツアー", "Tour", start, start + timedelta(days=3),
                        self.people * 3, start - timedelta(days=5), "小諸駅"),
                datetime.now(UTC),
            )  # fmt: skip
            tour_id = tour.id
        await engine.dispose()
        return tour_id

    async def drop(self) -> None:
        admin = create_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{self.schema}" CASCADE'))
        await admin.dispose()

    async def signups(self) -> dict[str, list[str]]:
        engine = create_engine(self.database_url)
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(Person.platform_user_id, Signup.status).join(
                    Signup, Signup.person_id == Person.id
                )
            )
            found: dict[str, list[str]] = {}
            for user, status in rows.all():
                found.setdefault(user, []).append(status)
        await engine.dispose()
        return found

    # --- the processes ------------------------------------------------------------------
    def processes(self) -> tuple[WebProcess, list[BotProcess]]:
        port = PORTS[self.shape]
        if self.shape == "procfile":
            web: WebProcess = AcceptingWeb(self.database_url, self.fake, self.workdir, port)
            return web, [web, answer_process(self.database_url, self.fake, self.workdir)]
        web = WebProcess(self.database_url, self.fake, self.workdir, port)
        web.command.append("--with-worker")
        return web, [web]

    @staticmethod
    def start(process: BotProcess) -> int:
        """Start it; return where its log stood, so a restart's own start line is awaited."""
        offset = process.log.stat().st_size if process.log.exists() else 0
        process.start()
        return offset

    @staticmethod
    async def started(process: BotProcess, web: WebProcess, offset: int) -> None:
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if process is web:
                with contextlib.suppress(httpx.HTTPError):
                    async with httpx.AsyncClient(timeout=1) as client:
                        if (await client.get(f"{web.url}/readyz")).status_code == 200:
                            return
            elif b"answering webhook events" in process.log.read_bytes()[offset:]:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{process.name} did not start\n{process.tail()}")

    # --- the people ---------------------------------------------------------------------
    def reached(self, event: dict[str, Any]) -> int:
        push = f"push:{retry_key(event['webhookEventId'])}"
        return self.fake.reached[event["replyToken"]] + self.fake.reached[push]

    async def deliver(self, web: WebProcess, body: bytes) -> None:
        """LINE: the same body again until a 200 (a short pause between tries)."""
        async with httpx.AsyncClient(timeout=10) as client:
            while True:
                headers = {"content-type": "application/json",
                           "x-line-signature": sign(body, LINE_SECRET)}  # fmt: skip
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.post(f"{web.url}/webhooks/line", content=body,
                                               headers=headers)  # fmt: skip
                    if answer.status_code == 200:
                        return
                await asyncio.sleep(0.5)
                body = body.replace(b'"isRedelivery": false', b'"isRedelivery": true')

    async def person(self, web: WebProcess, user: str, tour: int) -> None:
        for kind, value in signup_steps(tour):
            event = line_event(
                "text_message" if kind == "text" else "postback", Clock(datetime.now(UTC)),
                user=user, **({"text": value} if kind == "text" else {"data": value}),
            )  # fmt: skip
            self.events.append(event)
            await self.deliver(web, line_body(event))
            deadline = time.monotonic() + ANSWER_WAIT
            while not self.reached(event):
                if time.monotonic() > deadline:
                    self.waited_out += 1
                    break
                await asyncio.sleep(0.05)
            else:
                self.answered += 1
            self.progress.set()
            await asyncio.sleep(self.rng.uniform(0.2, 1.0))  # reading, typing

    async def killer(self, web: WebProcess, processes: list[BotProcess]) -> None:
        total = self.people * len(signup_steps(0))
        for n in range(self.kills):
            while self.answered < (n + 1) * total / (self.kills + 1) and not self.done:
                self.progress.clear()
                await self.progress.wait()
            if self.done:
                return
            await asyncio.sleep(self.rng.uniform(0, 0.3))
            victim = self.rng.choice(processes)
            victim.kill()
            await self.started(victim, web, self.start(victim))

    async def run(self) -> Figures:
        tour = await self.prepare()
        started = time.monotonic()
        processes: list[BotProcess] = []
        try:
            with self.fake.running():
                web, processes = self.processes()
                assert self.fake._server is not None
                self.fake._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
                offsets = [self.start(process) for process in processes]
                for process, offset in zip(processes, offsets, strict=True):
                    await self.started(process, web, offset)
                users = [f"U{0xC0 + n:032x}" for n in range(self.people)]
                killing = asyncio.create_task(self.killer(web, processes))
                await asyncio.gather(*(self.person(web, u, tour) for u in users))
                self.done = True
                self.progress.set()
                await killing
                await asyncio.sleep(15)  # the last leases run out; late resends land
                for process in processes:
                    process.stop()
                found = await self.signups()
        finally:
            for process in processes:
                process.stop()
            await self.drop()
        reached = Counter(self.reached(e) for e in self.events)
        confirmed = [found.get(u, []).count("confirmed") for u in users]
        return Figures(
            shape=self.shape, people=self.people, kills=self.kills, events=len(self.events),
            seconds=round(time.monotonic() - started, 1),
            signups_confirmed_once=confirmed.count(1), signups_lost=confirmed.count(0),
            signups_doubled=sum(1 for c in confirmed if c > 1),
            replies_once=reached[1], replies_lost=reached[0],
            replies_doubled=sum(n for k, n in reached.items() if k > 1),
            waited_out=self.waited_out,
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--shapes", default="procfile,single")
    parser.add_argument("--people", type=int, default=30)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory(prefix=f"crash-{shape}-") as workdir:
            run = Run(shape, args.people, args.kills, args.seed, Path(workdir))
            figures = asyncio.run(run.run())
        results.append(figures)
        print(json.dumps(asdict(figures)) if args.json else
              f"{shape}: {figures.people} people, {figures.kills} kills, {figures.events} "
              f"events in {figures.seconds} s | sign-ups: {figures.signups_confirmed_once} "
              f"once, {figures.signups_lost} lost, {figures.signups_doubled} doubled | "
              f"replies: {figures.replies_once} once, {figures.replies_lost} lost, "
              f"{figures.replies_doubled} doubled | steps typed unanswered: "
              f"{figures.waited_out}", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
