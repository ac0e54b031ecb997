#!/usr/bin/env python3
"""A fake LINE multicast + Telegram sendMessage API for bench/broadcast.py, failing on purpose.

usage: broadcast_fake.py PORT [--fail-every N] [--max-seconds S]

Unlike ../shared/webhook-bench/fakeplatform.py it injects failures and keeps LINE's promise
for X-Line-Retry-Key (a key accepted before gets 409), and counts deliveries per recipient:
every N-th multicast answers 429 and every (N+3)-th 500 (without accepting it), every N-th
sendMessage 429 with retry_after=1 and every (N+3)-th 500. GET /__stats returns the counts.
Listens on 127.0.0.1 only and exits after --max-seconds, so it never outlives a bench.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl


class State:
    def __init__(self, fail_every: int) -> None:
        self.fail_every = fail_every
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()  # request kinds and outcomes
        self.received: Counter[str] = Counter()  # recipient -> deliveries
        self.accepted: set[str] = set()
        self.tg_times: list[float] = []  # successful sendMessage times
        self.tg_requests: list[float] = []  # every sendMessage, failed or not (the pace)
        self.tg_chat_gap = float("inf")  # smallest gap between two messages to one chat
        self.tg_last: dict[str, float] = {}

    def stats(self) -> dict[str, Any]:
        with self.lock:
            times = sorted(self.tg_times)
            window = 0
            j = 0
            for i, t in enumerate(times):  # most sends in any one-second window
                while times[j] <= t - 1.0:
                    j += 1
                window = max(window, i - j + 1)
            return {
                "counts": dict(self.counts),
                "line_people": sum(1 for k in self.received if k.startswith("line:")),
                "telegram_chats": sum(1 for k in self.received if k.startswith("tg:")),
                "telegram_odd_keys": [k for k in self.received if k.startswith("tg:")
                                      and not 10_000_000 <= int(k[3:] or 0) < 20_000_000][:5],
                "duplicates_line": sum(1 for k, n in self.received.items()
                                       if n > 1 and k.startswith("line:")),
                "duplicates_telegram": sum(1 for k, n in self.received.items()
                                           if n > 1 and k.startswith("tg:")),
                "telegram_first": times[0] if times else None,
                "telegram_last": times[-1] if times else None,
                "telegram_per_second": per_second(times),
                "telegram_requests_per_second": per_second(sorted(self.tg_requests)),
                "telegram_max_per_second": window,
                "telegram_min_gap_one_chat": None if self.tg_chat_gap == float("inf")
                else self.tg_chat_gap,
            }  # fmt: skip


def per_second(times: list[float]) -> list[int]:
    """Successful sends in each whole second from the first up to the 90th percentile (the
    tail is rows waiting out a 500's backoff, not pace)."""
    if len(times) < 10:
        return []
    start, end = times[0], times[int(len(times) * 0.9)]
    buckets = [0] * (int(end - start) + 1)
    for t in times:
        if t <= end:
            buckets[int(t - start)] += 1
    return buckets[:-1]  # the last second is partial


def handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, obj: Any) -> None:
            data = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _body(self) -> Any:
            n = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(n) if n else b""
            ctype = self.headers.get("content-type", "")
            if "json" in ctype:
                return json.loads(raw or b"null")
            return dict(parse_qsl(raw.decode("utf-8")))

        def do_GET(self) -> None:
            if self.path == "/__stats":
                return self._send(200, state.stats())
            if self.path.endswith("/getMe"):
                me = {"id": 1, "is_bot": True, "first_name": "iju", "username": "iju_bot"}
                return self._send(200, {"ok": True, "result": me})
            return self._send(200, {})

        def do_POST(self) -> None:
            body = self._body()
            path = self.path.split("?")[0]
            if path.endswith("/message/multicast"):
                return self._multicast(body)
            if path.endswith("/sendMessage"):
                return self._telegram(body)
            if path.endswith("/getMe"):
                return self.do_GET()
            return self._send(200, {"ok": True, "result": True})

        def _multicast(self, body: dict[str, Any]) -> None:
            key = self.headers.get("x-line-retry-key", "")
            with state.lock:
                state.counts["line_requests"] += 1
                n = state.counts["line_requests"]
                if n % state.fail_every == 0:
                    state.counts["line_429"] += 1
                    status: int | None = 429
                elif n % (state.fail_every + 3) == 0:
                    state.counts["line_500"] += 1
                    status = 500
                elif key in state.accepted:
                    state.counts["line_409"] += 1
                    status = 409
                else:
                    status = None
                    state.accepted.add(key)
                    for user in body["to"]:
                        state.received[f"line:{user}"] += 1
            if status is not None:
                return self._send(status, {"message": "fake failure"})
            self._send(200, {})

        def _telegram(self, body: dict[str, Any]) -> None:
            chat = str(body.get("chat_id"))
            now = time.time()
            with state.lock:
                state.tg_requests.append(now)
                state.counts["telegram_requests"] += 1
                n = state.counts["telegram_requests"]
                if n % state.fail_every == 0:
                    state.counts["telegram_429"] += 1
                    failure: tuple[int, dict[str, Any]] | None = (429, {
                        "ok": False, "error_code": 429, "parameters": {"retry_after": 1},
                        "description": "Too Many Requests: retry after 1"})  # fmt: skip
                elif n % (state.fail_every + 3) == 0:
                    state.counts["telegram_500"] += 1
                    failure = (500, {"ok": False, "error_code": 500, "description": "Oops"})
                else:
                    failure = None
                    state.received[f"tg:{chat}"] += 1
                    state.tg_times.append(now)
                    if chat in state.tg_last:
                        state.tg_chat_gap = min(state.tg_chat_gap, now - state.tg_last[chat])
                    state.tg_last[chat] = now
                    message_id = n
            if failure is not None:
                return self._send(*failure)
            self._send(200, {"ok": True, "result": {
                "message_id": message_id, "date": int(now),
                "chat": {"id": int(chat), "type": "private", "first_name": "A"},
                "text": body.get("text", "")}})  # fmt: skip

    return Handler


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a killed worker resets its connections: expected here, not worth a traceback


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--fail-every", type=int, default=25)
    parser.add_argument("--max-seconds", type=float, default=1800)
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), handler(State(args.fail_every)))
    threading.Timer(args.max_seconds, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
