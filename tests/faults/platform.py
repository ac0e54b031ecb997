"""The fake platform as strict as the real ones where a crash test needs it, and able to stop
a bot process at an exact point of a request.

LINE's promises (Messaging API reference, "Retry failed API requests"): a reply token works
once (a second reply with it is a 400 "Invalid reply token", and the person sees nothing
more), and a push under an X-Line-Retry-Key LINE accepted before is a 409 that reaches
nobody. The shared fake accepts every reply, so a doubled reply would pass unseen there.

`hold(suffix)` keeps the next matching request waiting until `release()`: the bot process
is then stopped at that point (e.g. acknowledging a button press, before its engine ran).
`kill_on(suffix, kill)` takes the next matching request as the platform would (the message
reaches the person) and kills the bot process before it hears the answer: the one message
in flight at a crash."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.delivery.helpers import BroadcastFake
from tests.fakes.platform import Recorded

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"


class StrictFake(BroadcastFake):
    def __init__(self) -> None:
        super().__init__()
        self.used_tokens: set[str] = set()
        self.push_keys: set[str] = set()
        # What reached people: texts by Telegram chat id, by LINE reply token or push retry
        # key; how many LINE requests reached someone, by reply token or "push:<key>".
        self.seen: dict[str, list[str]] = {}
        self.reached: Counter[str] = Counter()
        self._hold: str | None = None
        self._released = threading.Event()
        self.holding = threading.Event()  # set once the held request has arrived
        self._kill: tuple[str, Callable[[], None], int] | None = None
        self.killed = threading.Event()

    # --- what tests use -----------------------------------------------------------------
    def hold(self, suffix: str) -> None:
        self._hold = suffix

    def release(self) -> None:
        self._released.set()

    def kill_on(self, suffix: str, kill: Callable[[], None], nth: int = 1) -> None:
        """On the nth request matching `suffix` from now, deliver it, then call `kill`."""
        self._kill = (suffix, kill, nth)

    def texts_to(self, who: str) -> list[str]:
        with self._lock:
            return list(self.seen.get(who, []))

    # --- the platform -------------------------------------------------------------------
    def _answer(self, rec: Recorded) -> tuple[int, Any]:
        path = rec.path.split("?")[0]
        if self._hold is not None and path.endswith(self._hold):
            self._hold = None
            self.holding.set()
            self._released.wait(timeout=60)  # then answered as any other
        status, answer = self._deliver(rec, path)
        kill = self._kill
        if kill is not None and path.endswith(kill[0]):
            suffix, then, nth = kill
            self._kill = (suffix, then, nth - 1) if nth > 1 else None
            if nth == 1:
                then()  # the message has reached the person; its sender never hears so
                self.killed.set()
        return status, answer

    def _deliver(self, rec: Recorded, path: str) -> tuple[int, Any]:
        body = rec.body if isinstance(rec.body, dict) else {}
        if path == REPLY:
            token = str(body.get("replyToken"))
            with self._lock:
                if token in self.used_tokens:
                    return 400, {"message": "Invalid reply token"}
                self.used_tokens.add(token)
            return self._reached(rec, token, body)
        if path == PUSH:
            key = rec.headers.get("x-line-retry-key", "")
            with self._lock:
                if key and key in self.push_keys:
                    return 409, {"message": "The retry key is already accepted"}
                self.push_keys.add(key)
            return self._reached(rec, f"push:{key}", body)
        if path.startswith("/bot") and rec.tg_method == "sendMessage":
            with self._lock:
                self.seen.setdefault(str(body.get("chat_id")), []).append(body.get("text", ""))
        return super()._answer(rec)

    def _reached(self, rec: Recorded, who: str, body: dict[str, Any]) -> tuple[int, Any]:
        texts = [m.get("text", "") for m in body.get("messages", [])]
        with self._lock:
            self.seen.setdefault(who, []).extend(texts)
            self.reached[who] += 1
        return super()._answer(rec)
