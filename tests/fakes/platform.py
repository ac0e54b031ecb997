"""A fake LINE Messaging API + Telegram Bot API on 127.0.0.1 (free port) recording every request.

The real SDK clients (line-bot-sdk's aiohttp client, python-telegram-bot's httpx client) talk
real HTTP to it. Answers are shaped like the platforms' so the SDKs accept them; a test can
make the next matching request fail with `fail_next`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON / form dict, or raw bytes

    @property
    def tg_method(self) -> str:
        return self.path.split("?")[0].rsplit("/", 1)[-1]


class FakePlatform:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._failures: list[tuple[str, int, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._message_id = 1000
        self._server: ThreadingHTTPServer | None = None

    # --- what tests use -----------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail_next(self, path_suffix: str, status: int, body: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._failures.append((path_suffix, status, body or {"message": "fake failure"}))

    def line_sends(self) -> list[Recorded]:
        sends = ("/v2/bot/message/reply", "/v2/bot/message/push")
        return [r for r in self.requests if r.path in sends]

    def telegram(self, method: str) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/bot") and r.tg_method == method]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    # --- server -------------------------------------------------------------------------
    @contextmanager
    def running(self) -> Iterator[FakePlatform]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                n = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(n) if n else b""
                ctype = self.headers.get("content-type", "")
                body: Any = raw
                if "json" in ctype:
                    body = json.loads(raw or b"null")
                elif "x-www-form-urlencoded" in ctype:
                    body = dict(parse_qsl(raw.decode("utf-8")))
                elif "multipart/form-data" in ctype:
                    body = {"_multipart": raw}
                rec = Recorded(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with fake._lock:
                    fake.requests.append(rec)
                    failure = next(
                        (f for f in fake._failures if self.path.split("?")[0].endswith(f[0])), None
                    )
                    if failure:
                        fake._failures.remove(failure)
                if failure:
                    return self._send(failure[1], failure[2])
                status, answer = fake._answer(rec)
                self._send(status, answer)

            def _send(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(timeout=5)

    def _answer(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0]
        if path.startswith("/bot"):
            return 200, {"ok": True, "result": self._telegram_result(rec)}
        if path in ("/v2/bot/message/reply", "/v2/bot/message/push"):
            return 200, {"sentMessages": [{"id": str(time.time_ns()), "quoteToken": "q"}]}
        if path == "/v2/bot/channel/webhook/endpoint" and rec.method == "GET":
            return 200, {"endpoint": "https://example.invalid/webhooks/line", "active": True}
        if path == "/v2/bot/richmenu" and rec.method == "POST":
            return 200, {"richMenuId": "richmenu-0123456789abcdef"}
        return 200, {}

    def _telegram_result(self, rec: Recorded) -> Any:
        method = rec.tg_method
        body = rec.body if isinstance(rec.body, dict) else {}
        if method == "getMe":
            return {"id": 123456, "is_bot": True, "first_name": "iju", "username": "iju_test_bot"}
        if method == "sendMessage":
            with self._lock:
                self._message_id += 1
                message_id = self._message_id
            chat = int(body.get("chat_id", 1))
            return {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private", "first_name": "A"},
                "text": body.get("text", ""),
            }
        if method == "getWebhookInfo":
            return {"url": "https://example.invalid/webhooks/telegram",
                    "has_custom_certificate": False, "pending_update_count": 0}  # fmt: skip
        return True
