"""Fixtures for the platform channels: a fake platform, signed bodies, the app with its lifespan."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.channels.line import LineChannel
from bot.channels.telegram import TelegramChannel
from bot.config import Settings, load_settings
from bot.web import create_app
from faq.library import FaqLibrary
from tests.conftest import ROOT, Clock
from tests.fakes.platform import FakePlatform

DATA = Path(__file__).resolve().parents[1] / "data"
LINE_SECRET = "line-test-channel-secret"
TG_SECRET = "tg-test-webhook-secret"
TG_TOKEN = "123456:test-token"


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    with FakePlatform().running() as platform:
        yield platform


def platform_settings(database_url: str, fake: FakePlatform, **env: str) -> Settings:
    environ = {
        "DATABASE_URL": database_url,
        "LINE_CHANNEL_SECRET": LINE_SECRET,
        "LINE_CHANNEL_ACCESS_TOKEN": "line-test-access-token",
        "LINE_API_BASE_URL": fake.url,
        "TELEGRAM_BOT_TOKEN": TG_TOKEN,
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "TELEGRAM_API_BASE_URL": f"{fake.url}/bot",
        **env,
    }
    return load_settings(ROOT / "config.toml", environ={k: v for k, v in environ.items() if v})


# --- bodies ---------------------------------------------------------------------------------
def sign(body: bytes, secret: str = LINE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def line_event(name: str, clock: Clock, **fields: Any) -> dict[str, Any]:
    """The recorded event in tests/data/line/<name>.json, fresh id, timestamped by the clock."""
    body = json.loads((DATA / "line" / f"{name}.json").read_text(encoding="utf-8"))
    event: dict[str, Any] = copy.deepcopy(body["events"][0])
    event["webhookEventId"] = "01" + uuid.uuid4().hex[:24].upper()
    event["timestamp"] = int(clock().timestamp() * 1000)
    if "replyToken" in event:
        event["replyToken"] = uuid.uuid4().hex
    if "text" in fields:
        event["message"]["text"] = fields.pop("text")
    if "data" in fields:
        event["postback"]["data"] = fields.pop("data")
    if "user" in fields:
        event["source"]["userId"] = fields.pop("user")
    event.update(fields)
    return event


def line_body(*events: dict[str, Any]) -> bytes:
    payload = {"destination": "U0123456789abcdef0123456789abcdef", "events": list(events)}
    return json.dumps(payload, ensure_ascii=False).encode()


_update_ids = iter(range(800_000_000, 900_000_000))


def tg_update(name: str, **fields: Any) -> dict[str, Any]:
    """The recorded update in tests/data/telegram/<name>.json with a fresh update_id."""
    update: dict[str, Any] = json.loads(
        (DATA / "telegram" / f"{name}.json").read_text(encoding="utf-8")
    )
    update["update_id"] = next(_update_ids)
    part = next((k for k in ("message", "callback_query", "edited_message") if k in update), "")
    if "text" in fields:
        update[part]["text"] = fields.pop("text")
    if "data" in fields:
        update[part]["data"] = fields.pop("data")
    if "user" in fields:
        uid = fields.pop("user")
        update[part]["from"]["id"] = uid
        if "chat" in update[part]:
            update[part]["chat"]["id"] = uid
    if "language_code" in fields:
        update[part]["from"]["language_code"] = fields.pop("language_code")
    assert not fields, fields
    return update


# --- the app --------------------------------------------------------------------------------
@dataclass
class Running:
    app: Starlette
    client: httpx.AsyncClient
    settings: Settings

    @property
    def line(self) -> LineChannel:
        channel: LineChannel = self.app.state.line
        return channel

    @property
    def telegram(self) -> TelegramChannel:
        channel: TelegramChannel = self.app.state.telegram
        return channel

    async def post_line(self, body: bytes, signature: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/json; charset=utf-8"}
        headers["x-line-signature"] = sign(body) if signature is None else signature
        return await self.client.post("/webhooks/line", content=body, headers=headers)

    async def post_telegram(self, update: Any, secret: str | None = TG_SECRET) -> httpx.Response:
        body = update if isinstance(update, bytes) else json.dumps(update).encode()
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers["x-telegram-bot-api-secret-token"] = secret
        return await self.client.post("/webhooks/telegram", content=body, headers=headers)

    async def drain(self) -> None:
        for name in ("line", "telegram"):
            channel = getattr(self.app.state, name, None)
            if channel is not None:
                await channel.inbox.drain()


@asynccontextmanager
async def running_app(
    settings: Settings, clock: Clock, library: FaqLibrary | None = None
) -> AsyncIterator[Running]:
    app = create_app(settings, clock=clock, migrate_schema=True, library=library)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        # https, as in production: the console's session cookie is Secure.
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            yield Running(app, client, settings)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Most channel tests are about the platform, not the database: SQLite only. Tests of
    the inbox itself (duplicates, retries, recovery) take `database_url` for both."""
    return f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"


@pytest.fixture
async def platform_app(
    sqlite_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> AsyncIterator[Running]:
    async with running_app(platform_settings(sqlite_url, fake), clock, faq_library) as running:
        yield running


@pytest.fixture
async def platform_app_any_db(
    database_url: str, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> AsyncIterator[Running]:
    async with running_app(platform_settings(database_url, fake), clock, faq_library) as running:
        yield running


@dataclass(frozen=True)
class FaqProbe:
    question: str
    answer: str  # the start of the answer the bot must give


@pytest.fixture(scope="session")
def faq_probe(faq_library: FaqLibrary) -> FaqProbe:
    """A question the knowledge base answers outright, taken from the KB itself, so these
    tests follow the FAQ files (and the matcher) as staff and other engineers change them."""
    from faq.matcher import Band

    matcher = faq_library.current
    for entry in matcher.kb:
        for question in entry.questions.get("ja", ()):
            result = matcher.match(question)
            if result.band is Band.ANSWER and result.best and result.best.entry.id == entry.id:
                return FaqProbe(question, entry.answer_in("ja")[:20])
    pytest.fail("no FAQ question is answered outright: check faq/ and the thresholds")
