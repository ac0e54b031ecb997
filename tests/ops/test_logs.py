"""JSON log lines, a request id per HTTP request down into the engine, and redaction."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot import logs
from bot.config import Settings
from bot.web import create_app
from faq.library import FaqLibrary
from tests.channels.conftest import (
    line_body,
    line_event,
    platform_settings,
    running_app,
    sign,
)
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Our handler on the root logger next to pytest's, at INFO, for one test."""
    stream = io.StringIO()
    handler = logs.make_handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    "secret",
    [
        "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw1",  # Telegram bot token shape
        "0123456789abcdef0123456789abcdef",  # LINE channel secret shape
        "eyJhbGciOiJIUzI1NiJ9" + "A" * 150 + "=",  # LINE channel access token shape
        "taro.yamada@example.jp",
        "090-1234-5678",
        "09012345678",
        "0267-22-1234",
        "+81 90 1234 5678",
        "０９０－１２３４－５６７８",
    ],
)
def test_tokens_emails_and_phone_numbers_are_masked(captured: io.StringIO, secret: str) -> None:
    logging.getLogger("bot.test").warning("got %s from someone", secret)
    try:
        raise ValueError(f"bad value {secret}")
    except ValueError:
        logging.getLogger("bot.test").exception("failed")
    text = captured.getvalue()
    assert secret not in text
    first, second = lines(captured)
    assert first["message"].startswith("got [") and first["message"].endswith("] from someone")
    # The exception keeps its type and frames; its text (which held the value) is withheld.
    assert "ValueError (message withheld" in second["exc_info"]


def test_ordinary_numbers_and_ids_are_kept(captured: io.StringIO) -> None:
    message = "tour 12 at 2026-12-20 13:00: 3 seat(s); delivery 4521 sent; event 01HZX8K2"
    logging.getLogger("bot.test").info(message)
    assert lines(captured)[0]["message"] == message


def test_one_json_object_per_line(captured: io.StringIO) -> None:
    logging.getLogger("bot.test").info("first line\nsecond line 「日本語」")
    (entry,) = lines(captured)
    assert entry["level"] == "INFO" and entry["logger"] == "bot.test"
    assert entry["message"] == "first line\nsecond line 「日本語」" and "time" in entry
    assert "request_id" not in entry  # outside any request


def test_log_format_names_the_variable() -> None:
    assert logs.log_format_from(None) == "text" and logs.log_format_from("JSON") == "json"
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        logs.log_format_from("xml")


def test_configure_replaces_root_handlers_and_sends_uvicorn_through_them() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    stream = io.StringIO()
    try:
        logs.configure("INFO", "json", stream)
        logging.getLogger("uvicorn.error").info("Started server process")
        assert json.loads(stream.getvalue())["logger"] == "uvicorn.error"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


@pytest.fixture
def client(settings: Settings, faq_library: FaqLibrary) -> Iterator[TestClient]:
    app = create_app(settings, migrate_schema=True, library=faq_library)
    with TestClient(app) as c:
        c.get("/")  # the page gives the visitor's cookie
        yield c


def test_request_id_reaches_the_engines_lines(client: TestClient, captured: io.StringIO) -> None:
    res = client.post(
        "/api/chat", json={"text": "空き家バンク"}, headers={"X-Request-Id": "req-42"}
    )
    assert res.headers["x-request-id"] == "req-42"
    engine = [e for e in lines(captured) if e["logger"] == "bot.engine"]
    assert engine and all(e["request_id"] == "req-42" for e in engine)


def test_odd_request_ids_are_replaced(client: TestClient, captured: io.StringIO) -> None:
    res = client.post("/api/chat", json={"text": "hello"}, headers={"X-Request-Id": "a b\x7f"})
    rid = res.headers["x-request-id"]
    assert rid != "a b\x7f" and len(rid) == 36
    other = client.get("/healthz").headers["x-request-id"]
    assert other != rid  # one per request
    assert all(e.get("request_id") in (rid, other) for e in lines(captured) if "request_id" in e)


def test_text_format_shows_the_request_id() -> None:
    stream = io.StringIO()
    handler = logs.make_handler("text", stream)
    token = logs.request_id.set("abc")
    try:
        record = logging.LogRecord("bot.x", logging.INFO, __file__, 1, "hi", None, None)
        handler.handle(record)
    finally:
        logs.request_id.reset(token)
    assert stream.getvalue().rstrip().endswith("bot.x: hi [abc]")
    assert sys.stderr is not stream


async def test_each_webhook_event_logs_under_its_own_request(
    sqlite_url: str,
    fake: FakePlatform,
    clock: Clock,
    faq_library: FaqLibrary,
    captured: io.StringIO,
) -> None:
    """The inbox commits several requests' events together; each event's engine lines still
    carry the id of the request that brought it, not of the one that flushed the batch."""
    async with running_app(platform_settings(sqlite_url, fake), clock, faq_library) as running:

        async def post(rid: str, user: str) -> None:
            body = line_body(line_event("text_message", clock, text="空き家バンク", user=user))
            headers = {"x-line-signature": sign(body), "x-request-id": rid}
            res = await running.client.post("/webhooks/line", content=body, headers=headers)
            assert res.status_code == 200 and res.headers["x-request-id"] == rid

        await asyncio.gather(*(post(f"hook-{n}", f"U{n:032x}") for n in range(6)))
        await running.drain()
    handled = [e for e in lines(captured) if e["message"].startswith("line event handled")]
    assert sorted(e.get("request_id", "") for e in handled) == [f"hook-{n}" for n in range(6)]


def test_an_access_log_line_keeps_the_path_not_the_query(captured: io.StringIO) -> None:
    # uvicorn.access's own format and arguments (client, method, path, version, status).
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/admin/people?q=小諸花子", "1.1", 200
    )
    (entry,) = lines(captured)
    assert entry["message"] == '127.0.0.1:5000 - "GET /admin/people HTTP/1.1" 200'
