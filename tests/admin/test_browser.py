"""One real browser (Debian's headless Chromium, driven by Playwright) against the real app
served by uvicorn on 127.0.0.1: sign in, send an announcement to a segment and see the fake
LINE server receive it, then answer a handoff from the inbox."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from bot.admin.accounts import create_staff
from bot.config import Settings, load_settings
from bot.runtime import build_runtime
from bot.web import create_app
from tests.admin import data
from tests.admin.conftest import ADMIN, PASSWORD
from tests.conftest import ROOT
from tests.fakes.platform import FakePlatform

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
ANNOUNCEMENT = "【小諸市】移住フェアのお知らせ：12月7日 東京・有楽町"
REPLY = "担当の山田です。空き家バンクの登録は市役所2階の窓口でもできます。"


def _browser_or_skip() -> tuple[Any, Any]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        pytest.skip(f"playwright is not installed ({exc})")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(
            "Chromium is not installed (.ci/run installs Debian's chromium; "
            "apt-get install chromium chromium-driver)"
        )
    return sync_playwright, expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_in_own_thread(fn: Any) -> Any:
    """Playwright's sync API keeps an event loop on this thread: async work goes elsewhere."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = asyncio.run(fn())
        except BaseException as exc:  # handed back to the test below
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=60)
    if "error" in result:
        raise result["error"]
    return result.get("value")


class Served:
    def __init__(self, settings: Settings, kwargs: dict[str, Any]) -> None:
        self.settings = settings
        self.kwargs = kwargs
        self.port = _free_port()
        app = create_app(settings, migrate_schema=True, **kwargs)
        # log_config/log_level None: uvicorn leaves the process's logging set-up alone, so
        # the tests after this one see the loggers as they were.
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, lifespan="on",
            log_config=None, log_level=None, access_log=False,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def worker_tick(self) -> None:
        """What `python -m bot worker` does once, as a separate process would: its own
        runtime on the same database, real LINE pushers pointed at the fake server."""
        from bot.pushers import register_pushers

        async def tick() -> None:
            runtime = await build_runtime(self.settings, **self.kwargs)
            closers = await register_pushers(runtime)
            try:
                await runtime.worker().tick()
            finally:
                for close in closers:
                    await close()
                await runtime.aclose()

        _run_in_own_thread(tick)

    def seed(self) -> dict[str, int]:
        async def make() -> dict[str, int]:
            runtime = await build_runtime(self.settings, **self.kwargs)
            now = runtime.clock()
            try:
                async with runtime.sessions() as session, session.begin():
                    await create_staff(session, ADMIN, PASSWORD, "admin", now)
                    data.person(session, user="U-en-reader", language="en", created_at=now)
                    for n in range(2):
                        data.person(session, user=f"U-ja-reader-{n}", created_at=now)
                    data.person(session, user="U-company", audience="company", created_at=now)
                    asking = data.person(session, user="U-asking", created_at=now)
                    await session.flush()
                    data.message(session, asking, "空き家バンクに登録するには？", now)
                    data.message(session, asking, "担当者と話したい", now)
                    handoff = data.handoff(session, asking, now)
                    await session.flush()
                    return {"handoff": handoff.id}
            finally:
                await runtime.aclose()

        return asyncio.run(make())


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Served, FakePlatform]]:
    with FakePlatform().running() as fake:
        environ = {
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'browser.sqlite3'}",
            "LINE_CHANNEL_SECRET": "browser-test-line-secret",
            "LINE_CHANNEL_ACCESS_TOKEN": "browser-test-line-token",
            "LINE_API_BASE_URL": fake.url,
            "CONSOLE_PLAIN_HTTP_ON_LOOPBACK": "1",  # `make run`'s shape: http on 127.0.0.1
        }
        settings = load_settings(ROOT / "config.toml", environ=environ)
        kwargs: dict[str, Any] = {}
        if "library" in inspect.signature(create_app).parameters:
            kwargs["library"] = request.getfixturevalue("faq_library")
        with Served(settings, kwargs) as server:
            yield server, fake


def test_staff_send_an_announcement_and_answer_a_handoff_in_a_browser(
    served: tuple[Served, FakePlatform],
) -> None:
    sync_playwright, expect = _browser_or_skip()
    server, fake = served
    ids = server.seed()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(locale="ja-JP")
            page.set_default_timeout(15_000)

            # Not signed in: the console sends the browser to its login page.
            page.goto(f"{server.url}/admin/announcements")
            assert "/admin/login" in page.url
            page.fill("input[name=email]", ADMIN)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit] >> text=ログイン")
            page.wait_for_url(f"{server.url}/admin/announcements")

            # Compose for Japanese-speaking LINE residents: the count updates as boxes change.
            page.fill("textarea[name=text_ja]", ANNOUNCEMENT)
            page.check("input[name=channels][value=line]")
            page.check("input[name=audiences][value=resident]")
            page.check("input[name=languages][value=ja]")
            # Playwright's own polling, not an evaluated function: the console's CSP forbids
            # the eval that wait_for_function needs once the count is late to arrive.
            expect(page.locator("#recipient-count")).to_have_attribute(
                "data-total", "3", timeout=15_000
            )
            assert "3人に届きます" in page.inner_text("#recipient-count")
            page.click("#send")
            page.wait_for_url("**/admin/announcements/*")
            assert "送信します（3人）" in page.inner_text("main")

            server.worker_tick()
            multicasts = [r for r in fake.requests if r.path == "/v2/bot/message/multicast"]
            assert len(multicasts) == 1
            body = multicasts[0].body
            assert sorted(body["to"]) == ["U-asking", "U-ja-reader-0", "U-ja-reader-1"]
            assert body["messages"][0]["text"].startswith(ANNOUNCEMENT)
            assert multicasts[0].headers.get("x-line-retry-key")
            server.worker_tick()  # the announcement is marked sent once its rows are done
            page.goto(f"{server.url}/admin/announcements")
            assert page.inner_text("#history tbody tr:first-child td.delivered") == "3"

            # The inbox: read the conversation, reply, hand it back to the bot.
            page.click("text=有人対応")
            page.click(f"a[href='/admin/inbox/{ids['handoff']}']")
            assert "空き家バンクに登録するには？" in page.inner_text("#conversation")
            page.fill("#reply-form textarea[name=text]", REPLY)
            page.click("#reply-form button[type=submit]")
            page.wait_for_selector("text=返信を送信しました")
            assert REPLY in page.inner_text("#conversation")
            server.worker_tick()
            pushes = [r for r in fake.requests if r.path == "/v2/bot/message/push"]
            assert [p.body["to"] for p in pushes] == ["U-asking"]
            assert pushes[0].body["messages"][0]["text"] == REPLY
            page.click("#return-form button")
            page.wait_for_selector("text=ボットの対応に戻しました")
            assert "対応待ちの会話はありません" in page.inner_text("#handoffs")
        finally:
            browser.close()
