"""No tokens and no personal data in the logs: a realistic session with the production log
set-up (bot.logs.configure, JSON and text), every line captured and searched.

The session: a sign-up with a name, an e-mail address and a phone number through the web
chat, the same details written on LINE and Telegram, a request for a person (handoff), a
staff sign-in (one wrong password first) and a staff reply. The secrets are shaped like
real ones (a 32-hex LINE secret, a 172-character access token, a `<id>:<35>` bot token),
since the log redaction recognises shapes.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot import logs
from bot.admin.accounts import create_staff
from bot.storage.db import create_engine
from bot.storage.models import Handoff
from faq.library import FaqLibrary
from tests.channels.conftest import line_event, platform_settings, running_app, sign, tg_update
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform
from tests.signup.helpers import make_tour

LINE_SECRET = "9f86d081884c7d659a2feaa0c55ad015"
LINE_TOKEN = (
    "Xq7pL2"
    + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3kL5mN7pQ9rS1tU3vW5xY7zA9bC1dE3fG" * 2
)
BOT_TOKEN = "7012345678:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1"
WEBHOOK_SECRET = "wh-s3cr3t_Tg-0a9b8c7d6e5f4g3h2i1j"
PASSWORD = "Tr0ub4dor&3-horse-staple"
WRONG_PASSWORD = "Tr0ub4dor&3-horse-stapel"
STAFF_EMAIL = "tanaka.staff@city.example.jp"
NAME = "小諸 花子"
KANA = "こもろ はなこ"
EMAIL = "hanako.komoro@example.jp"
PHONE = "090-1234-5678"
PHONE_WIDE = "０９０－１２３４－５６７８"
SECRETS = {
    "LINE channel secret": LINE_SECRET,
    "LINE access token": LINE_TOKEN,
    "Telegram bot token": BOT_TOKEN,
    "Telegram bot token secret part": BOT_TOKEN.split(":")[1],
    "Telegram webhook secret": WEBHOOK_SECRET,
    "console password": PASSWORD,
    "wrong console password": WRONG_PASSWORD,
    "staff e-mail": STAFF_EMAIL,
    "name": NAME,
    "name (family)": "小諸",
    "name (kana)": KANA,
    "e-mail": EMAIL,
    "phone": PHONE,
    "phone (digits)": PHONE.replace("-", ""),
    "phone (full-width)": PHONE_WIDE,
    "phone (full-width digits)": "０９０１２３４５６７８",
}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@contextmanager
def production_logging(fmt: logs.LogFormat) -> Iterator[io.StringIO]:
    """bot.logs.configure as `serve` calls it, into a buffer; pytest's handlers and levels
    are put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    uv = {n: (logging.getLogger(n).handlers[:], logging.getLogger(n).propagate)
          for n in ("uvicorn", "uvicorn.error", "uvicorn.access")}  # fmt: skip
    buffer = io.StringIO()
    logs.configure("INFO", fmt, stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        for name, (handlers, propagate) in uv.items():
            logging.getLogger(name).handlers[:] = handlers
            logging.getLogger(name).propagate = propagate


async def _session(tmp_path: Path, fake: FakePlatform, clock: Clock, library: FaqLibrary) -> None:
    settings = platform_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'privacy.sqlite3'}",
        fake,
        LINE_CHANNEL_SECRET=LINE_SECRET,
        LINE_CHANNEL_ACCESS_TOKEN=LINE_TOKEN,
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    async with running_app(settings, clock, library) as app:
        runtime = app.app.state.runtime
        tour = await make_tour(runtime, clock.now)
        client = app.client
        await client.get("/")  # the page gives the visitor's cookie

        # Web chat: the whole individual sign-up.
        steps: list[dict[str, str]] = [
            {"text": "ツアーに申し込みたい"},
            {"postback": f"form:tour:{tour}"},
            {"text": NAME},
            {"text": KANA},
            {"text": PHONE_WIDE},
            {"postback": "form:2"},
            {"postback": "form:1"},
            {"text": "東京"},
            {"postback": "form:telework"},
            {"postback": "form:toggle:housing"},
            {"postback": "form:done"},
            {"postback": "form:none"},
            {"postback": "form:agree"},
            {"postback": "form:confirm"},
            {"text": f"連絡先は {EMAIL} か {PHONE} です。{NAME}"},
        ]
        for step in steps:
            res = await client.post("/api/chat", json=step)
            assert res.status_code == 200
        bookings = (await client.post("/api/chat", json={"text": "予約確認"})).json()
        assert "（確定）" in bookings["replies"][0]["text"]  # the sign-up went through

        # LINE: the same details in messages, a sign-up started, then a person asked for.
        user = "U" + "c" * 32
        line_texts = ("ツアーに申し込みたい", f"{NAME}です。{EMAIL} {PHONE_WIDE}",
                      "担当者と話したい", f"電話は {PHONE} メールは {EMAIL} です")  # fmt: skip
        for text in line_texts:
            body = json.dumps(
                {"destination": "U" + "0" * 32,
                 "events": [line_event("text_message", clock, text=text, user=user)]},
                ensure_ascii=False,
            ).encode()  # fmt: skip
            res = await client.post(
                "/webhooks/line",
                content=body,
                headers={"x-line-signature": sign(body, LINE_SECRET)},
            )
            assert res.status_code == 200
            await app.drain()

        # Telegram: a name in the profile, details in the text, a handoff.
        for text in (
            f"私は{NAME}、{PHONE} / {EMAIL}",
            "担当者と話したい",
            f"{PHONE_WIDE} に電話ください",
        ):
            update = tg_update("text_message", text=text, user=5550001)
            update["message"]["from"]["first_name"] = NAME
            update["message"]["chat"]["first_name"] = NAME
            res = await client.post(
                "/webhooks/telegram",
                content=json.dumps(update, ensure_ascii=False).encode(),
                headers={"x-telegram-bot-api-secret-token": WEBHOOK_SECRET,
                         "content-type": "application/json"},
            )  # fmt: skip
            assert res.status_code == 200
            await app.drain()

        # The console: a wrong password, the right one, the inbox, a reply.
        async with runtime.sessions() as session, session.begin():
            await create_staff(session, STAFF_EMAIL, PASSWORD, "staff", clock())
        for password in (WRONG_PASSWORD, PASSWORD):
            page = await client.get("/admin/login")
            token = _CSRF.search(page.text)
            assert token
            res = await client.post(
                "/admin/login",
                data={"email": STAFF_EMAIL, "password": password,
                      "csrf_token": token.group(1), "next": "/admin/"},
            )  # fmt: skip
        assert res.status_code == 303
        async with runtime.sessions() as session:
            handoffs = list(await session.scalars(select(Handoff.id)))
        assert handoffs, "the handoff requests did not reach the inbox"
        for handoff in handoffs:
            page = await client.get(f"/admin/inbox/{handoff}")
            assert page.status_code == 200 and (NAME in page.text or EMAIL in page.text)
            token = _CSRF.search(page.text)
            assert token
            res = await client.post(
                f"/admin/inbox/{handoff}/reply",
                data={"text": f"{NAME}様、{PHONE}にお電話します", "csrf_token": token.group(1)},
            )
            assert res.status_code in (200, 303)
        await app.drain()


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_no_secret_or_personal_data_in_any_log_line(
    tmp_path: Path, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary, fmt: logs.LogFormat
) -> None:
    with production_logging(fmt) as buffer:
        await _session(tmp_path, fake, clock, faq_library)
    output = buffer.getvalue()
    assert len(output.splitlines()) > 20, "the session logged almost nothing: capture broken?"
    if fmt == "json":
        [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    leaks = {what: value for what, value in SECRETS.items() if value in output}
    lines = [line for line in output.splitlines() if any(v in line for v in leaks.values())]
    assert leaks == {}, "\n".join(lines[:10])


# --- whatever fails: uvicorn's tracebacks and client disconnects ---------------------------
MESSAGE = "小諸 花子です。空き家を探しています"


class _Watch(logging.Handler):
    """Wakes the test when uvicorn has logged about a request (it logs after the app)."""

    def __init__(self) -> None:
        super().__init__()
        self.logged = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.logged.set()


def _failing_app(database_url: str) -> Starlette:
    """Routes that fail the way the console did: a statement with a resident's details, and
    an exception raised with a resident's words in it; and one that reads a request body."""
    engine = create_engine(database_url)

    async def store(request: Request) -> Response:
        async with engine.begin() as conn:
            await conn.execute(
                text("CREATE TABLE IF NOT EXISTS people (name TEXT UNIQUE, message TEXT)")
            )
            for _ in range(2):  # the second insert breaks the unique name; PostgreSQL's
                # error then quotes the row itself: "Key (name)=(...) already exists"
                await conn.execute(
                    text("INSERT INTO people (name, message) VALUES (:name, :message)"),
                    {"name": NAME, "message": MESSAGE},
                )
        return PlainTextResponse("stored")

    async def parse(request: Request) -> Response:
        raise ValueError(f"could not understand {MESSAGE!r} from {NAME}")

    async def upload(request: Request) -> Response:
        return PlainTextResponse(str(len(await request.body())))

    return Starlette(
        routes=[
            Route("/store", store, methods=["POST"]),
            Route("/parse", parse, methods=["POST"]),
            Route("/upload", upload, methods=["POST"]),
        ]
    )


@asynccontextmanager
async def _uvicorn(app: Starlette, port: int) -> AsyncIterator[_Watch]:
    """The app under a real uvicorn (its own error logging), in this event loop."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level=None, access_log=False
    )
    server = uvicorn.Server(config)
    watch = _Watch()
    error_log = logging.getLogger("uvicorn.error")
    # An earlier test's uvicorn (log_level="warning") leaves its level behind, and a client
    # that went away is logged at INFO: as a server started with LOG_LEVEL=INFO logs it.
    level = error_log.level
    error_log.setLevel(logging.INFO)
    error_log.addHandler(watch)
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:  # start-up, not a timed wait: the task runs meanwhile
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        watch.logged.clear()  # "Started server process" and friends
        yield watch
    finally:
        server.should_exit = True
        await task
        error_log.removeHandler(watch)
        error_log.setLevel(level)


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_a_failing_request_logs_no_parameters_or_message_text(
    database_url: str, fmt: logs.LogFormat
) -> None:
    app = _failing_app(database_url)
    with production_logging(fmt) as buffer:
        async with _uvicorn(app, 8741) as watch, httpx.AsyncClient() as client:
            for path in ("/store", "/parse"):
                watch.logged.clear()
                res = await client.post(f"http://127.0.0.1:8741{path}")
                assert res.status_code == 500
                await asyncio.wait_for(watch.logged.wait(), 10)
    output = buffer.getvalue()
    # The operator still learns what failed and where.
    assert "IntegrityError" in output and "INSERT INTO people" in output
    assert "ValueError" in output and "Traceback" in output
    for value in (NAME, "小諸", MESSAGE, "空き家を探しています"):
        assert value not in output, output


async def test_a_client_that_went_away_is_not_an_error() -> None:
    app = _failing_app("sqlite+aiosqlite://")
    with production_logging("json") as buffer:
        async with _uvicorn(app, 8742) as watch:
            _reader, writer = await asyncio.open_connection("127.0.0.1", 8742)
            writer.write(
                b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\npart"
            )
            await writer.drain()
            writer.close()  # gone before the body is complete
            await writer.wait_closed()
            await asyncio.wait_for(watch.logged.wait(), 10)
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    gone = [line for line in lines if "went away" in line["message"]]
    assert gone and all(line["level"] == "INFO" and "exc_info" not in line for line in gone)
    assert [line for line in lines if line["level"] == "ERROR"] == []
