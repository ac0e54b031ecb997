"""Hostile and generated input through the real app: webhook bodies generated from the LINE
and Telegram specs, realistic bodies with hostile text in every field, mutated types, deep
JSON, bytes that are not UTF-8, forged signatures, and the web chat's own API.

Every example is posted to the app (signed as the platform would sign it, unless the test
is about forgeries), the inbox is drained (the answering runs after the 200), and then:
no 5xx, no traceback or exception text in the response, nothing sent to the platform that
looks like one, no event that failed in the engine. At the end the app still answers a
normal question correctly. Examples per test: a few hundred by default (`make test`),
ten times more with RELIABILITY_SCALE=10 (bench/README.md, "Reliability").
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.config import WebChatSettings
from bot.storage.models import WebhookInbox
from bot.web import create_app
from faq.library import FaqLibrary
from tests.channels.conftest import DATA, TG_SECRET, FaqProbe, platform_settings, sign
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform
from tests.reliability import hostile

# Examples per test = base x RELIABILITY_SCALE (1 in `make test`; 10 for the heavy run).
SCALE = float(os.environ.get("RELIABILITY_SCALE", "1"))


def examples(base: int) -> int:
    return max(1, round(base * SCALE))


HOSTILE = settings(
    deadline=None,  # one example is a request, a drain and sends over loopback: not a unit
    database=None,  # no .hypothesis/ directory in the work tree; failures print their input
    # `make test` draws the same examples every run, so CI is reproducible; the heavy run
    # (RELIABILITY_SCALE > 1) draws new ones each time to keep exploring.
    derandomize=SCALE <= 1,
    # The app is made once per test and kept across examples on purpose: what one example
    # leaves behind (rows, half-filled forms, handoffs) is the state the next one meets.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large, HealthCheck.large_base_example],
)  # fmt: skip
# What a Python error looks like when it leaks: a traceback, a frame line, an exception name.
LEAK = re.compile(
    r"Traceback \(most recent|File \"[^\"]+\", line \d+|\b[A-Z]\w*(Error|Exception)\b"
)
# Counted per test and printed at the end, so the report says how many cases really ran.
COUNTS: dict[str, int] = {}


@dataclass
class Live:
    client: TestClient
    fake: FakePlatform
    caplog: pytest.LogCaptureFixture

    def drain(self) -> None:
        async def run() -> None:
            for name in ("line", "telegram"):
                channel = getattr(self.client.app.state, name, None)  # type: ignore[attr-defined]
                if channel is not None:
                    await channel.inbox.drain()

        portal = self.client.portal
        assert portal is not None
        portal.call(run)

    def inbox_count(self) -> int:
        async def run() -> int:
            runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
            async with runtime.sessions() as session:
                return int(await session.scalar(select(func.count()).select_from(WebhookInbox)))

        portal = self.client.portal
        assert portal is not None
        return portal.call(run)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> Any:
        seen = len(self.fake.requests)
        res = self.client.post(path, content=body, headers=headers)
        assert res.status_code < 500, (res.status_code, res.text[:300])
        assert not LEAK.search(res.text), res.text[:500]
        self.drain()
        for sent in self.fake.requests[seen:]:
            text = sent.body if isinstance(sent.body, bytes) else json.dumps(sent.body)
            assert not LEAK.search(str(text)), str(text)[:500]
        failures = [
            r.getMessage()
            for r in self.caplog.records
            if r.levelno >= logging.ERROR and r.name.startswith(("bot", "faq"))
        ]
        assert failures == [], failures
        return res


@contextmanager
def live_app(
    database_url: str,
    fake: FakePlatform,
    clock: Clock,
    faq_library: FaqLibrary,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Live]:
    settings_ = platform_settings(database_url, fake)
    # Hundreds of web chat requests from the test client's one address at a frozen clock:
    # the rate limits have tests of their own (tests/channels/test_webchat_bounds.py).
    unbounded = WebChatSettings(
        visitor_per_minute=10_000, visitor_burst=10_000, address_per_minute=100_000,
        address_burst=100_000,
    )  # fmt: skip
    settings_ = settings_.model_copy(update={"webchat": unbounded})
    app = create_app(settings_, clock=clock, migrate_schema=True, library=faq_library)
    caplog.set_level(logging.INFO)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Live(client, fake, caplog)


@pytest.fixture
def live(
    database_url: str,
    fake: FakePlatform,
    clock: Clock,
    faq_library: FaqLibrary,
    caplog: pytest.LogCaptureFixture,
) -> Iterator[Live]:
    """The app on a fresh SQLite file and on a PostgreSQL schema of its own (skipped, with
    the reason, where no server answers)."""
    with live_app(database_url, fake, clock, faq_library, caplog) as app:
        yield app


def _recorded(kind: str) -> list[Any]:
    return [json.loads(p.read_text("utf-8")) for p in sorted((DATA / kind).glob("*.json"))]


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


@pytest.fixture(scope="module", autouse=True)
def report_counts() -> Iterator[None]:
    yield
    total = sum(COUNTS.values())
    print(f"\nhostile input: {total} cases ({', '.join(f'{k} {v}' for k, v in COUNTS.items())})")


# --- still answering afterwards -------------------------------------------------------------
def line_still_answers(live: Live, probe: FaqProbe) -> None:
    recorded = json.loads((DATA / "line" / "text_message.json").read_text("utf-8"))
    event = recorded["events"][0]
    event.update(webhookEventId="01AFTERHOSTILEINPUT000001", replyToken="after-hostile-input")
    event["source"]["userId"] = "U" + "a" * 32
    event["message"]["text"] = probe.question
    body = json.dumps(recorded, ensure_ascii=False).encode()
    live.fake.clear()
    res = live.post("/webhooks/line", body, {"x-line-signature": sign(body)})
    assert res.status_code == 200
    [sent] = live.fake.line_sends()
    assert sent.body["messages"][0]["text"].startswith(probe.answer)


def telegram_still_answers(live: Live, probe: FaqProbe) -> None:
    update = json.loads((DATA / "telegram" / "text_message.json").read_text("utf-8"))
    update["update_id"] = 999_999_999
    update["message"]["from"]["id"] = update["message"]["chat"]["id"] = 4242
    update["message"]["text"] = probe.question
    live.fake.clear()
    res = live.post("/webhooks/telegram", json.dumps(update).encode(), _tg_headers())
    assert res.status_code == 200
    [sent] = live.fake.telegram("sendMessage")
    assert str(sent.body["text"]).startswith(probe.answer)


def _tg_headers(secret: str = TG_SECRET) -> dict[str, str]:
    return {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}


# --- LINE -----------------------------------------------------------------------------------
def _line_realistic() -> st.SearchStrategy[Any]:
    bodies = _recorded("line")
    return st.sampled_from(bodies).flatmap(hostile.hostile_fill)


# Drawing from the spec costs 0.3-2 s an example (hypothesis-jsonschema), a recorded body
# with hostile text ~30 ms: fewer of the first.
@pytest.mark.parametrize(
    "name, build, count",
    [("spec", hostile.line_spec_bodies, 25), ("realistic", _line_realistic, 250)],
    ids=["from-webhook.yml", "recorded-with-hostile-text"],
)
def test_line_signed_hostile_bodies(
    live: Live,
    faq_probe: FaqProbe,
    name: str,
    build: Callable[[], st.SearchStrategy[Any]],
    count: int,
) -> None:
    @settings(HOSTILE, max_examples=examples(count))
    @given(hostile.make_strategy(build))
    def run(body: bytes) -> None:
        _count(f"line-{name}")
        res = live.post("/webhooks/line", body, {"x-line-signature": sign(body)})
        assert res.status_code in (200, 400, 401, 413)

    run()
    line_still_answers(live, faq_probe)


# --- Telegram -------------------------------------------------------------------------------
def _tg_realistic() -> st.SearchStrategy[Any]:
    return st.sampled_from(_recorded("telegram")).flatmap(hostile.hostile_fill)


@pytest.mark.parametrize(
    "name, build, count",
    [("spec", hostile.telegram_spec_updates, 25), ("realistic", _tg_realistic, 250)],
    ids=["from-api.json", "recorded-with-hostile-text"],
)
def test_telegram_hostile_updates(
    live: Live,
    faq_probe: FaqProbe,
    name: str,
    build: Callable[[], st.SearchStrategy[Any]],
    count: int,
) -> None:
    @settings(HOSTILE, max_examples=examples(count))
    @given(hostile.make_strategy(build))
    def run(body: bytes) -> None:
        _count(f"telegram-{name}")
        res = live.post("/webhooks/telegram", body, _tg_headers())
        assert res.status_code in (200, 400, 413)

    run()
    telegram_still_answers(live, faq_probe)


_ASCII = st.characters(codec="ascii", exclude_categories=["Cc"])


# --- forgeries ------------------------------------------------------------------------------
def test_forged_and_unsigned_bodies_are_refused_and_nothing_is_stored(
    live: Live, faq_probe: FaqProbe
) -> None:
    """Signed with the wrong secret, signed for other bytes, garbage signatures, no header;
    Telegram with a wrong, empty or almost-right secret token: refused, nothing stored."""
    signature = st.one_of(
        st.just(None),
        st.text(alphabet=_ASCII, max_size=60),  # what an HTTP header can carry
        st.binary(max_size=40).map(lambda b: sign(b)),  # a real HMAC, of other bytes
        st.text(min_size=1, max_size=40).map(lambda s: sign(b"x", secret=s)),
    )
    token = st.one_of(
        st.just(None),
        st.just(""),
        st.just(TG_SECRET.upper()),
        st.just(TG_SECRET + " "),
        st.just(TG_SECRET[:-1]),
        st.text(alphabet=_ASCII, max_size=60),
    )
    bodies = st.one_of(hostile.make_strategy(_line_realistic), hostile.make_strategy(_tg_realistic))

    @settings(HOSTILE, max_examples=examples(60))
    @given(bodies, signature, token)
    def run(body: bytes, line_sig: str | None, tg_token: str | None) -> None:
        _count("forged")
        seen = len(live.fake.requests)
        headers = {} if line_sig is None else {"x-line-signature": line_sig}
        if line_sig != sign(body):
            assert live.post("/webhooks/line", body, headers).status_code in (401, 413)
        tg = {} if tg_token is None else {"x-telegram-bot-api-secret-token": tg_token}
        if tg_token != TG_SECRET:
            assert live.post("/webhooks/telegram", body, tg).status_code == 403
        assert live.inbox_count() == 0
        assert live.fake.requests[seen:] == []

    run()
    line_still_answers(live, faq_probe)


# --- web chat -------------------------------------------------------------------------------
def test_web_chat_hostile_requests(live: Live, faq_probe: FaqProbe) -> None:
    message = st.fixed_dictionaries(
        {},
        optional={
            "text": st.one_of(
                hostile.hostile_text(), st.integers(), st.none(), st.lists(st.text())
            ),
            "postback": st.one_of(hostile.hostile_text(), st.booleans()),
            "id": st.one_of(hostile.hostile_text(), st.integers()),
            "language": st.one_of(st.sampled_from(["ja", "en"]), hostile.hostile_text()),
        },
    )
    bodies = hostile.raw_bodies(hostile.mutated(message))
    cookies = st.one_of(st.none(), hostile.hostile_text().map(lambda s: s[:200]))

    live.client.get("/")  # no cookie drawn: the page's own, so bodies reach the engine

    @settings(HOSTILE, max_examples=examples(200))
    @given(bodies, cookies)
    def run(body: bytes, cookie: str | None) -> None:
        _count("webchat")
        headers = {"content-type": "application/json"}
        if cookie is not None:
            quoted = cookie.encode("ascii", "backslashreplace").decode("ascii")
            headers["cookie"] = "iju_chat=" + "".join(c for c in quoted if c.isprintable())
        res = live.post("/api/chat", body, headers)
        assert res.status_code in (200, 400, 413)
        res.json()  # always JSON the page can show
        updates = live.client.get("/api/chat/updates")
        assert updates.status_code == 200 and not LEAK.search(updates.text)

    run()
    live.client.cookies.clear()
    live.client.get("/")
    answer = live.client.post("/api/chat", json={"text": faq_probe.question})
    assert answer.status_code == 200
    assert faq_probe.answer in answer.text
