"""The request-size cap: oversized bodies get a short 413 whether they declare their length
or arrive chunked, and the application never buffers more than the limit."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.body_limit import LIMITS, BodyLimitMiddleware
from faq.library import FaqLibrary
from tests.channels.conftest import TG_SECRET, platform_settings, sign
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform

MIB = 1024 * 1024
WEBHOOK_LIMIT = dict(LIMITS)["/webhooks/"]


async def _echo_length(request: Request) -> JSONResponse:
    return JSONResponse({"read": len(await request.body())})


def _small_app(limit: int) -> Starlette:
    return Starlette(
        routes=[Route("/webhooks/x", _echo_length, methods=["POST"])],
        middleware=[Middleware(BodyLimitMiddleware, limits=[("/webhooks/", limit)])],
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """The app behind a real uvicorn on a free loopback port, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            threading.Event().wait(0.01)  # polling a flag another thread sets, not a timer
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        sent += piece
        yield b"x" * piece


def test_chunked_body_over_the_limit_is_refused_with_413() -> None:
    with serve(_small_app(100_000)) as url, httpx.Client(base_url=url) as client:
        res = client.post("/webhooks/x", content=_chunks(10 * MIB))
        assert res.status_code == 413
        assert res.json()["error"]["en"] == "The request is too large."
        assert "Traceback" not in res.text
    with serve(_small_app(100_000)) as url, httpx.Client(base_url=url) as client:
        # Under the limit, chunked or not, the route reads the whole body as before.
        assert client.post("/webhooks/x", content=_chunks(99_000)).json() == {"read": 99_000}
        assert client.post("/webhooks/x", content=b"y" * 100_000).json() == {"read": 100_000}


def test_declared_length_over_the_limit_is_refused_before_reading() -> None:
    with serve(_small_app(1000)) as url, httpx.Client(base_url=url) as client:
        res = client.post("/webhooks/x", content=b"z" * 5000)
        assert res.status_code == 413
        assert "error" in res.json()


async def test_the_app_never_pulls_more_than_the_limit() -> None:
    """ASGI level: a 100 MiB chunked body in 64 KiB pieces; the app stops after ~the limit."""
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"a" * 65536, "more_body": pulled < 1600}

    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/webhooks/x", "headers": [],
             "query_string": b"", "http_version": "1.1", "scheme": "http",
             "server": ("t", 80), "client": ("c", 1), "root_path": ""}  # fmt: skip
    await _small_app(MIB)(scope, receive, send)
    assert sent[0]["status"] == 413
    assert pulled == MIB // 65536 + 1  # one piece past the limit, then nothing more
    assert json.loads(sent[1]["body"])["error"]["ja"]


def test_other_paths_fall_back_to_the_default_limit() -> None:
    middleware = BodyLimitMiddleware(_small_app(1), limits=[("/a", 10), ("/a/b", 20)], default=5)
    assert middleware.limit_for("/a/b/c") == 20  # the longest prefix wins
    assert middleware.limit_for("/a/x") == 10
    assert middleware.limit_for("/zzz") == 5


def test_real_app_refuses_a_chunked_webhook_and_keeps_answering(
    tmp_path: Any, fake: FakePlatform, clock: Clock, faq_library: FaqLibrary
) -> None:
    """The production app through uvicorn: a signed but huge chunked LINE body is refused
    with 413 (not read whole, not a 500), and the next normal request is served."""
    from bot.web import create_app

    settings = platform_settings(f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}", fake)
    app = create_app(settings, clock=clock, migrate_schema=True, library=faq_library)
    body = b'{"destination":"U","events":[' + b" " * (2 * WEBHOOK_LIMIT) + b"]}"
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        pieces = iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
        res = client.post(
            "/webhooks/line", content=pieces, headers={"x-line-signature": sign(body)}
        )
        assert res.status_code == 413
        assert "Traceback" not in res.text
        telegram = {"x-telegram-bot-api-secret-token": TG_SECRET}
        huge = _chunks(2 * WEBHOOK_LIMIT)
        res = client.post("/webhooks/telegram", content=huge, headers=telegram)
        assert res.status_code == 413
        assert client.post("/api/chat", content=_chunks(100_000)).status_code == 413
        assert client.get("/healthz").status_code == 200
        ok = b'{"destination":"U","events":[]}'
        assert (
            client.post(
                "/webhooks/line", content=iter([ok]), headers={"x-line-signature": sign(ok)}
            ).status_code
            == 200
        )
        metrics = client.get("/metrics").text
        assert 'status="413"' in metrics
