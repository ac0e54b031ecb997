"""A login flood must not stall the webhooks (issue 15, defect 2): password hashes run off the
event loop, one at a time per process, and one client address gets a bounded number of tries.

The hash is replaced by one that waits for the test's signal, so "the webhook was answered
while logins were hashing" is an order of events, not a timing: on an event loop that hashes
in place, no webhook can be answered until the hashes give up waiting.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from argon2.exceptions import VerifyMismatchError
from starlette.applications import Starlette
from starlette.testclient import TestClient

from bot.admin import accounts
from bot.config import Settings
from bot.web import create_app
from faq.library import FaqLibrary
from tests.admin.conftest import ADMIN, HTTPS, PASSWORD, Console, app_kwargs
from tests.channels.conftest import line_body, line_event, platform_settings, running_app, sign
from tests.conftest import Clock, make_settings
from tests.fakes.platform import FakePlatform

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Only a guard against a hang when the hashes do block the loop (today's bug): in the passing
# run the test releases them as soon as the webhook is answered.
GIVE_UP_S = 3.0
REAL_HASHER = accounts._hasher


@dataclass
class HeldHasher:
    """Stands in for argon2's verify: records the order of events and how many hashes ran at
    once, and holds each hash until the test releases them."""

    release: threading.Event = field(default_factory=threading.Event)
    started: threading.Event = field(default_factory=threading.Event)
    events: list[str] = field(default_factory=list)
    running: int = 0
    most_at_once: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verify(self, password_hash: str, password: str) -> bool:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.events.append("hash started")
        self.started.set()
        self.release.wait(GIVE_UP_S)
        with self.lock:
            self.running -= 1
            self.events.append("hash done")
        raise VerifyMismatchError("held by the test")

    def hash(self, password: str) -> str:
        return REAL_HASHER.hash(password)

    def check_needs_rehash(self, password_hash: str) -> bool:
        return False


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    with FakePlatform().running() as platform:
        yield platform


async def _login_form(app: Starlette, client_host: str) -> tuple[httpx.AsyncClient, str]:
    """A browser at `client_host` that has opened the login page (it holds the CSRF token)."""
    transport = httpx.ASGITransport(app=app, client=(client_host, 40000))
    browser = httpx.AsyncClient(transport=transport, base_url=HTTPS)
    page = await browser.get("/admin/login")
    found = _CSRF.search(page.text)
    assert found
    return browser, found.group(1)


async def _post_login(browser: httpx.AsyncClient, token: str, email: str) -> httpx.Response:
    return await browser.post(
        "/admin/login",
        data={"email": email, "password": "a guess at the password", "csrf_token": token},
    )


async def test_webhooks_are_answered_while_a_login_flood_hashes(
    tmp_path: Path,
    fake: FakePlatform,
    clock: Clock,
    faq_library: FaqLibrary,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Four sign-ins for unknown addresses from four clients: one hashes, two wait their
    turn, the fourth finds the queue full and gets a 429 at once. Meanwhile LINE's webhook is
    answered, before any hash has finished."""
    monkeypatch.setattr(accounts, "MAX_WAITING", 2, raising=False)  # absent before the fix
    settings = platform_settings(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", fake)
    async with running_app(settings, clock, faq_library) as running:
        browsers = [await _login_form(running.app, f"198.51.100.{n}") for n in range(1, 5)]
        # The timing equaliser's hash is made once, by a first unknown address, beforehand.
        first, token = browsers[0]
        assert (await _post_login(first, token, "nobody@city.example.jp")).status_code == 401

        held = HeldHasher()
        monkeypatch.setattr(accounts, "_hasher", held)
        logins = [
            asyncio.create_task(_post_login(b, t, f"nobody{n}@city.example.jp"))
            for n, (b, t) in enumerate(browsers[:3])
        ]
        await asyncio.to_thread(held.started.wait, GIVE_UP_S)
        # The fourth comes once the other two wait their turn (they reach the hasher after
        # their own database reads, in whatever order a loaded machine gives them).
        limiter = accounts._limiter()
        for _ in range(10_000):
            if limiter.statistics().tasks_waiting >= 2:
                break
            await asyncio.sleep(0.001)
        assert limiter.statistics().tasks_waiting == 2
        fourth, token = browsers[3]
        logins.append(asyncio.create_task(_post_login(fourth, token, "nobody3@city.example.jp")))
        await asyncio.wait_for(asyncio.shield(logins[3]), GIVE_UP_S)
        body = line_body(line_event("text_message", clock, text="ゴミの出し方"))
        webhook = await running.client.post(
            "/webhooks/line",
            content=body,
            headers={"x-line-signature": sign(body), "content-type": "application/json"},
        )
        held.events.append("webhook answered")
        assert webhook.status_code == 200
        refused = [t for t in logins if t.done()]
        held.release.set()
        answers = await asyncio.gather(*logins)
        for browser, _ in browsers:
            await browser.aclose()

    assert held.events.index("webhook answered") < held.events.index("hash done"), held.events
    assert held.most_at_once == 1
    assert sorted(a.status_code for a in answers) == [401, 401, 401, 429]
    assert [t.result().status_code for t in refused] == [429]
    busy = next(a for a in answers if a.status_code == 429)
    assert "ログインの試行が多すぎます" in busy.text and busy.headers["retry-after"]


@pytest.fixture
def limited(database_url: str, clock: Clock, request: pytest.FixtureRequest) -> Iterator[Starlette]:
    """The console with three sign-in attempts per address per ten minutes."""
    settings: Settings = make_settings(database_url)
    console = settings.console.model_copy(update={"logins_per_address": 3})
    settings = settings.model_copy(update={"console": console})
    yield create_app(settings, clock=clock, migrate_schema=True, **app_kwargs(request))


def test_one_address_gets_a_429_after_its_attempts_others_do_not(
    limited: Starlette, clock: Clock
) -> None:
    with TestClient(
        limited, base_url=HTTPS, follow_redirects=False, client=("203.0.113.7", 1)
    ) as c:
        flood = Console(c)
        flood.add_staff(ADMIN, "admin")
        for n in range(3):
            assert flood.login(f"guess{n}@city.example.jp").status_code == 401
        blocked = flood.login(ADMIN)  # even the right password: no hash is spent on it
        assert blocked.status_code == 429
        assert "ログインの試行が多すぎます。10分ほど待って" in blocked.text
        assert int(blocked.headers["retry-after"]) == 600
        flood.client.get("/admin/lang?to=en&next=/admin/login")
        assert "Too many sign-in attempts" in flood.login(ADMIN).text
        assert c.get("/admin/").status_code == 303  # not signed in

        # A colleague at another address signs in as usual.
        colleague = TestClient(limited, base_url=HTTPS, follow_redirects=False,
                               client=("198.51.100.20", 1))  # fmt: skip
        colleague.portal = c.portal  # the same app on its one event loop: no second lifespan
        other = Console(colleague)
        assert other.login(ADMIN, PASSWORD).status_code == 303

        # Ten minutes on, the first address may try again.
        clock.advance(minutes=10, seconds=1)
        assert flood.login(ADMIN).status_code == 303
