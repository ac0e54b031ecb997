"""The web process SIGKILLed at random points while people sign up through LINE webhooks,
then started again: no accepted event lost, no sign-up lost or doubled, no reply sent twice.

Real processes (`python -m bot serve`) on a SQLite file and on PostgreSQL. A kill comes
either right after an event was accepted (200, perhaps not yet processed) or while a webhook
request is in flight; LINE then redelivers what got no 200, as the platform does. The kill
points come from a seeded RNG: FAULT_SEED=<n> replays a run (the seed is printed)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.channels.line import retry_key
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory
from bot.storage.models import Person, Signup
from bot.storage.tours import NewTour, add_tour
from tests.channels.conftest import line_body, line_event, sign
from tests.conftest import Clock
from tests.delivery.helpers import BroadcastFake
from tests.faults.processes import LINE_SECRET, WebProcess, wait_for

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"
SEED = int(os.environ.get("FAULT_SEED", "8"))
# Kept small for `make test`; bench/faults.py runs more people, kills and seeds.
USERS = int(os.environ.get("FAULT_USERS", "2"))
KILLS = int(os.environ.get("FAULT_KILLS", "2"))


@pytest.fixture
def fake() -> Iterator[BroadcastFake]:
    platform = BroadcastFake()
    with platform.running():
        yield platform


def signup_steps(tour: int) -> list[tuple[str, str]]:
    """An individual's whole sign-up on LINE, as tests/channels/test_signup_platforms.py."""
    return [
        ("text", "ツアーに申し込みたい"), ("postback", f"form:tour:{tour}"),
        ("text", "小諸 花子"), ("text", "こもろ はなこ"), ("text", "hanako@example.jp"),
        ("text", "9"), ("text", "2"), ("postback", "form:0"), ("text", "東京都"),
        ("postback", "form:telework"), ("postback", "form:toggle:housing"),
        ("postback", "form:done"), ("postback", "form:none"), ("postback", "form:agree"),
        ("postback", "form:confirm"),
    ]  # fmt: skip


async def prepare(database_url: str) -> int:
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    start = datetime.now(UTC) + timedelta(days=30)
    async with session_factory(engine)() as session, session.begin():
        tour = await add_tour(
            session,
            NewTour("experience", "体験ツアー", "Tour", start, start + timedelta(days=3), 50,
                    start - timedelta(days=5), "小諸駅"),
            datetime.now(UTC),
        )  # fmt: skip
        tour_id = tour.id
    await engine.dispose()
    return tour_id


async def signups_by_user(database_url: str) -> dict[str, list[str]]:
    engine = create_engine(database_url)
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


class Line:
    """LINE's side: posts signed webhooks and redelivers until it gets a 200."""

    def __init__(self, web: WebProcess) -> None:
        self.web = web

    async def post(self, body: bytes) -> int:
        headers = {"content-type": "application/json", "x-line-signature": sign(body, LINE_SECRET)}
        url = f"{self.web.url}/webhooks/line"
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(url, content=body, headers=headers)
        return answer.status_code

    async def deliver(self, body: bytes) -> None:
        for _ in range(20):
            with contextlib.suppress(httpx.HTTPError):
                if await self.post(body) == 200:
                    return
            if not self.web.alive():
                raise AssertionError(f"the web process died\n{self.web.tail()}")
        raise AssertionError("LINE got no 200 after 20 deliveries")


def answers_to(fake: BroadcastFake, event: dict[str, Any]) -> list[str]:
    """How the bot answered one event: by its reply token, or (a restart later than the
    token's minute) by a push under the event's retry key, which LINE accepts only once."""
    key = retry_key(event["webhookEventId"])
    found = []
    for r in list(fake.requests):
        if r.path == REPLY and r.body.get("replyToken") == event["replyToken"]:
            found.append("reply")
        elif r.path == PUSH and r.headers.get("x-line-retry-key") == key:
            found.append(f"push:{key}")
    return found


async def test_web_killed_during_signups_loses_and_doubles_nothing(
    database_url: str, fake: BroadcastFake, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"FAULT_SEED={SEED}")
    tour = await prepare(database_url)
    web = WebProcess(database_url, fake, tmp_path)
    line = Line(web)
    clock = Clock(datetime.now(UTC))
    users = [f"U{0xA1 + n:032x}" for n in range(USERS)]
    # People write in turns: one step of each, then the next step of each.
    turns = [(user, step) for step in signup_steps(tour) for user in users]
    events: list[dict[str, Any]] = []
    kills = sorted(rng.sample(range(1, len(turns)), KILLS))
    # Both kinds of kill in every run, in an order the seed picks.
    kinds = ["accepted", "in_flight"][:KILLS]
    kinds += [rng.choice(("accepted", "in_flight")) for _ in range(KILLS - len(kinds))]
    rng.shuffle(kinds)
    modes = dict(zip(kills, kinds, strict=True))
    print("kills at events", {i: modes[i] for i in kills})

    web.start()
    try:
        await web.ready()
        for i, (user, (kind, value)) in enumerate(turns):
            clock.now = datetime.now(UTC)  # LINE stamps an event when the person writes
            event = line_event(
                "text_message" if kind == "text" else "postback", clock, user=user,
                **({"text": value} if kind == "text" else {"data": value}),
            )  # fmt: skip
            events.append(event)
            body = line_body(event)
            if modes.get(i) == "in_flight":
                posting = asyncio.create_task(line.post(body))
                await asyncio.sleep(rng.uniform(0, 0.05))  # a random moment of the request
                web.kill()
                with contextlib.suppress(httpx.HTTPError):
                    await posting  # a 200 may or may not have made it out
                web.start()
                await web.ready()
                body = line_body({**event, "deliveryContext": {"isRedelivery": True}})
                await line.deliver(body)
            else:
                await line.deliver(body)
                if modes.get(i) == "accepted":
                    web.kill()  # accepted, perhaps not yet answered
                    web.start()
                    await web.ready()

            async def answered(event: dict[str, Any] = event) -> bool:
                return bool(answers_to(fake, event))

            await wait_for(f"the reply to event {i}", answered, 30, web.log)
    finally:
        web.stop()
    assert web.starts == 1 + KILLS

    # Every event answered exactly once: nothing accepted was lost, nothing sent twice (a
    # push repeated under one retry key is one delivery: LINE answers 409 to the copy).
    answers = {e["webhookEventId"]: set(answers_to(fake, e)) for e in events}
    assert [a for a in answers.values() if len(a) != 1] == []
    tokens = Counter(r.body["replyToken"] for r in fake.requests if r.path == REPLY)
    assert set(tokens.values()) == {1}
    print("answered by push after a restart:", sum("reply" not in a for a in answers.values()))
    # One confirmed sign-up each: none lost, none doubled.
    assert await signups_by_user(database_url) == {u: ["confirmed"] for u in users}
    texts = [m.get("text", "") for r in fake.requests if r.path == REPLY
             for m in r.body["messages"]]  # fmt: skip
    assert sum("受け付けました" in t for t in texts) == len(users)
