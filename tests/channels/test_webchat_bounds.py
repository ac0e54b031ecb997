"""The web chat's bounds (issue 15, defects 5 and 8): one visitor or one address cannot
flood it, a page view is not a person, one visitor cannot bury the staff's list of
unanswered questions, and one visitor's message ids are theirs alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from bot.config import ConfigError, Settings, load_settings
from bot.runtime import Runtime
from bot.storage.models import Person, UnansweredQuestion
from bot.web import create_app
from faq.library import FaqLibrary
from tests.conftest import ROOT, Clock


@pytest.fixture
def client(settings: Settings, clock: Clock, faq_library: FaqLibrary) -> Iterator[TestClient]:
    app = create_app(settings, clock=clock, migrate_schema=True, library=faq_library)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def count(client: TestClient, table: type[Person] | type[UnansweredQuestion]) -> int:
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def go() -> int:
        async with runtime.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(table)) or 0)

    assert client.portal is not None
    return client.portal.call(go)


def new_visitor(client: TestClient) -> None:
    client.cookies.clear()
    client.get("/")


def test_a_visitor_sending_too_fast_is_asked_politely_to_wait(
    client: TestClient, settings: Settings, clock: Clock
) -> None:
    new_visitor(client)
    burst = settings.webchat.visitor_burst
    for n in range(burst):
        assert client.post("/api/chat", json={"text": f"hello {n}"}).status_code == 200
    refused = client.post("/api/chat", json={"text": "one more"})
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 1 <= wait <= 60
    notice = refused.json()["error"]
    assert "待って" in notice["ja"] and "wait" in notice["en"]
    assert f"{wait}" in notice["en"]  # says how long
    clock.advance(seconds=wait)
    assert client.post("/api/chat", json={"text": "back again"}).status_code == 200


def test_many_cookies_from_one_address_share_its_allowance(
    client: TestClient, settings: Settings, clock: Clock
) -> None:
    taken = 0
    for _ in range(settings.webchat.address_burst + 5):
        new_visitor(client)  # a script fetching a fresh cookie for every message
        if client.post("/api/chat", json={"text": "こんにちは"}).status_code == 200:
            taken += 1
    assert taken == settings.webchat.address_burst
    assert count(client, Person) == taken


def test_opening_the_page_keeps_no_person(client: TestClient) -> None:
    new_visitor(client)
    opened = client.post("/api/chat", json={"event": "open", "id": "o-1"})
    assert opened.status_code == 200 and "小諸市" in opened.json()["replies"][0]["text"]
    assert count(client, Person) == 0
    client.post("/api/chat", json={"text": "空き家バンクについて教えて"})
    assert count(client, Person) == 1
    # Reopened later: now they are someone, and the welcome comes from the engine as before.
    again = client.post("/api/chat", json={"event": "open"})
    assert again.status_code == 200 and again.json()["replies"]
    assert count(client, Person) == 1


def test_posts_without_the_page_cookie_make_no_person(client: TestClient) -> None:
    for _ in range(10):
        client.cookies.clear()
        res = client.post("/api/chat", json={"text": "spam"})
        assert res.status_code == 400
        assert "Cookie" in res.json()["error"]["ja"] and "cookie" in res.json()["error"]["en"]
    client.cookies.clear()
    opened = client.post("/api/chat", json={"event": "open"})  # a page that lost its cookie
    assert opened.status_code == 200 and "iju_chat" in opened.cookies
    assert count(client, Person) == 0


def test_one_visitor_cannot_flood_the_unanswered_list(
    client: TestClient, settings: Settings, clock: Clock
) -> None:
    new_visitor(client)
    for n in range(12):
        clock.advance(seconds=60)  # slow enough for the rate limit
        res = client.post("/api/chat", json={"text": f"火星の天気はどうですか {n}"})
        assert res.status_code == 200
    kept = settings.staff.unanswered_per_person_per_hour
    assert count(client, UnansweredQuestion) == kept
    # Another person's question still reaches staff.
    new_visitor(client)
    client.post("/api/chat", json={"text": "火星の天気はどうですか"})
    assert count(client, UnansweredQuestion) == kept + 1


def test_the_same_message_id_from_two_visitors_is_answered_for_both(client: TestClient) -> None:
    new_visitor(client)
    first = client.post("/api/chat", json={"text": "English", "id": "m-1"})
    new_visitor(client)
    second = client.post("/api/chat", json={"text": "English", "id": "m-1"})
    assert first.json()["replies"] and second.json()["replies"], "neither is dropped"
    # ... while a visitor's own double submit is still answered once.
    again = client.post("/api/chat", json={"text": "English", "id": "m-1"})
    assert again.status_code == 200 and again.json()["replies"] == []


def test_a_wrong_limit_stops_start_up_naming_its_key(tmp_path: Path) -> None:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text.replace("visitor_burst = 20", "visitor_burst = 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"webchat\.visitor_burst"):
        load_settings(path, environ={})
