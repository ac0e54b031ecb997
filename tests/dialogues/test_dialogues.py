"""The dialogue set (dialogues.toml) on the web chat, LINE and Telegram, through their fakes:
commands understood in any wording, honoured inside forms, bookings by intent, language.

Each channel runs every dialogue in one app, each dialogue as a new person, and reports every
dialogue that went wrong at once (a list of failures reads better than the first one)."""

from __future__ import annotations

import json
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest
from sqlalchemy import select

from bot.config import ChannelAudiences, WebChatSettings
from bot.storage.bookings import SqlTourDesk
from bot.storage.models import Person
from bot.storage.tours import NewTour, add_tour
from faq.library import FaqLibrary
from tests.channels.conftest import (
    Running,
    line_body,
    line_event,
    platform_settings,
    running_app,
    tg_update,
)
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform

DIALOGUES: list[dict[str, Any]] = tomllib.loads(
    (Path(__file__).with_name("dialogues.toml")).read_text(encoding="utf-8")
)["dialogue"]


@dataclass
class Said:
    texts: list[str] = field(default_factory=list)
    choices: list[tuple[str, str]] = field(default_factory=list)  # (label, value)
    buttons_shown: bool = True  # False where the platform got a numbered list instead

    @property
    def text(self) -> str:
        return "\n".join(self.texts)


class Person_(Protocol):
    channel: str
    user_id: str

    async def say(self, text: str) -> Said: ...
    async def press(self, value: str, label: str) -> Said: ...
    async def open(self) -> Said: ...


class WebVisitor:
    channel = "web"

    def __init__(self, running: Running) -> None:
        transport = httpx.ASGITransport(app=running.app)
        self.client = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        self.user_id = ""

    async def _post(self, body: dict[str, Any]) -> Said:
        if not self.client.cookies:
            await self.client.get("/")  # as a browser does: the page sets the visitor cookie
        response = await self.client.post("/api/chat", json=body)
        assert response.status_code == 200, response.text
        self.user_id = self.user_id or str(self.client.cookies.get("iju_chat", ""))
        replies = response.json()["replies"]
        return Said(
            [r["text"] for r in replies],
            [(c["label"], c["value"]) for r in replies for c in r["choices"]],
        )

    async def say(self, text: str) -> Said:
        return await self._post({"text": text})

    async def press(self, value: str, label: str) -> Said:
        return await self._post({"postback": value})

    async def open(self) -> Said:
        return await self._post({"event": "open"})


class LineFriend:
    channel = "line"

    def __init__(self, running: Running, fake: FakePlatform, clock: Clock) -> None:
        self.running, self.fake, self.clock = running, fake, clock
        self.user_id = "U" + uuid.uuid4().hex

    async def _send(self, event: dict[str, Any]) -> Said:
        self.fake.clear()
        response = await self.running.post_line(line_body(event))
        assert response.status_code == 200
        await self.running.drain()
        said = Said()
        for request in self.fake.line_sends():
            for message in request.body["messages"]:
                said.texts.append(message.get("text", ""))
                items = message.get("quickReply", {}).get("items", [])
                for item in items:
                    action = item["action"]
                    said.choices.append((action.get("label", ""), action.get("data", "")))
        said.buttons_shown = bool(said.choices) or "\n1. " not in said.text
        return said

    async def say(self, text: str) -> Said:
        return await self._send(
            line_event("text_message", self.clock, text=text, user=self.user_id)
        )

    async def press(self, value: str, label: str) -> Said:
        return await self._send(line_event("postback", self.clock, data=value, user=self.user_id))

    async def open(self) -> Said:
        return await self._send(line_event("follow", self.clock, user=self.user_id))


class TelegramUser:
    channel = "telegram"
    _ids = iter(range(7_100_000_000, 7_200_000_000))

    def __init__(self, running: Running, fake: FakePlatform) -> None:
        self.running, self.fake = running, fake
        self.number = next(self._ids)
        self.user_id = str(self.number)

    async def _send(self, update: dict[str, Any]) -> Said:
        self.fake.clear()
        response = await self.running.post_telegram(update)
        assert response.status_code == 200
        await self.running.drain()
        said = Said()
        for request in self.fake.telegram("sendMessage"):
            said.texts.append(request.body["text"])
            markup = json.loads(request.body.get("reply_markup") or "{}")
            for row in markup.get("inline_keyboard", []):
                said.choices += [(b["text"], b.get("callback_data", "")) for b in row]
        return said

    async def say(self, text: str) -> Said:
        return await self._send(tg_update("text_message", text=text, user=self.number))

    async def press(self, value: str, label: str) -> Said:
        return await self._send(tg_update("callback_query", data=value, user=self.number))

    async def open(self) -> Said:
        return await self.say("/start")


async def give_bookings(running: Running, clock: Clock, channel: str, user_id: str, n: int) -> None:
    """n confirmed sign-ups for the person, each on its own tour (plus one more open tour to
    move to), booked the way the chat books them."""
    start = clock.now + timedelta(days=30)
    async with running.app.state.runtime.sessions() as session, session.begin():
        person = await session.scalar(
            select(Person).where(Person.channel == channel, Person.platform_user_id == user_id)
        )
        assert person is not None, "the person must have said something first"
        desk = SqlTourDesk(session, running.app.state.runtime.policy, person.id, clock.now)
        for i in range(n):
            tour = await add_tour(
                session,
                NewTour("experience", "移住体験ツアー", "Migration tour",
                        start + timedelta(days=7 * i), start + timedelta(days=7 * i + 3), 10,
                        start - timedelta(days=5), "駅"),
                clock.now,
            )  # fmt: skip
            await desk.book(
                tour_id=tour.id,
                form="individual",
                form_key=uuid.uuid4().hex,
                seats=1,
                details={"name": "試験 太郎"},
                language="ja",
                waitlist=False,
            )


async def add_open_tours(running: Running, clock: Clock) -> None:
    start = clock.now + timedelta(days=60)
    async with running.app.state.runtime.sessions() as session, session.begin():
        for kind in ("experience", "experience", "site_visit", "online_meeting"):
            await add_tour(
                session,
                NewTour(kind, "体験ツアー", "Tour", start, start + timedelta(days=3), 10,
                        start - timedelta(days=5), "小諸駅"),
                clock.now,
            )  # fmt: skip


async def run_dialogue(
    dialogue: dict[str, Any], person: Person_, running: Running, clock: Clock
) -> list[str]:
    problems: list[str] = []
    said = Said()
    if dialogue.get("bookings"):
        await person.say("こんにちは")
        await give_bookings(running, clock, person.channel, person.user_id, dialogue["bookings"])
    for n, step in enumerate(dialogue["steps"], start=1):
        where = f"{dialogue['name']} / step {n}"
        if "say" in step:
            said = await person.say(step["say"])
        elif "press" in step:
            said = await person.press(step["press"], "")
        elif "open" in step:
            said = await person.open()
        elif "tap" in step or "tap_value" in step:
            label, prefix = step.get("tap"), step.get("tap_value")
            picked = [
                (lbl, val)
                for lbl, val in said.choices
                if (label is not None and lbl == label)
                or (prefix is not None and val.startswith(prefix))
            ]
            if picked:
                said = await person.press(picked[0][1], picked[0][0])
            elif label is not None and not said.buttons_shown:
                said = await person.say(label)  # a numbered list: the label, typed
            else:
                problems.append(f"{where}: no button {label or prefix!r} in {said.choices}")
                break
        for expected in step.get("expect", []):
            if expected not in said.text:
                problems.append(f"{where}: expected {expected!r} in {said.text[:300]!r}")
        for unwanted in step.get("absent", []):
            if unwanted in said.text:
                problems.append(f"{where}: did not expect {unwanted!r} in {said.text[:300]!r}")
        values = [v for _, v in said.choices]
        for prefix in step.get("offers", []):
            if said.buttons_shown and not any(v.startswith(prefix) for v in values):
                problems.append(f"{where}: no button starting {prefix!r} in {values}")
    return problems


@pytest.fixture
async def dialogue_app(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> AsyncIterator[Running]:
    settings = platform_settings(sqlite_url, fake)
    # Residents everywhere, so the individual form's dialogues run on Telegram too; the
    # company dialogues ask for the company form themselves.
    bot = settings.bot.model_copy(update={"audience": ChannelAudiences(telegram="resident")})
    # Every visitor comes from the test client's one address at the frozen clock: the rate
    # limits have tests of their own.
    webchat = WebChatSettings(
        visitor_per_minute=10_000, visitor_burst=10_000, address_per_minute=100_000,
        address_burst=100_000,
    )  # fmt: skip
    settings = settings.model_copy(update={"bot": bot, "webchat": webchat})
    async with running_app(settings, clock, faq_library) as running:
        await add_open_tours(running, clock)
        yield running


def test_the_set_is_large_and_varied() -> None:
    assert len(DIALOGUES) >= 60
    names = [d["name"] for d in DIALOGUES]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("channel", ["web", "line", "telegram"])
async def test_every_dialogue(
    channel: str, dialogue_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    problems: list[str] = []
    for dialogue in DIALOGUES:
        person: Person_
        if channel == "web":
            person = WebVisitor(dialogue_app)
        elif channel == "line":
            person = LineFriend(dialogue_app, fake, clock)
        else:
            person = TelegramUser(dialogue_app, fake)
        problems += await run_dialogue(dialogue, person, dialogue_app, clock)
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)
