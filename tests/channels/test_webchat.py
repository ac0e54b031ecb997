"""The web chat page and JSON endpoint, through the real app and its lifespan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from bot.config import Settings
from bot.messages import Reply
from bot.web import create_app
from faq.library import FaqLibrary


@pytest.fixture
def client(settings: Settings, faq_library: FaqLibrary) -> Iterator[TestClient]:
    app = create_app(settings, migrate_schema=True, library=faq_library)
    with TestClient(app, raise_server_exceptions=False) as c:
        c.get("/")  # as a visitor does: the page gives the cookie the chat needs
        yield c


def test_page_is_served_with_a_visitor_cookie(client: TestClient) -> None:
    client.cookies.clear()
    res = client.get("/")
    assert res.status_code == 200 and "移住相談チャット" in res.text
    assert "iju_chat" in res.cookies


def test_conversation_keeps_the_visitor(client: TestClient) -> None:
    client.get("/")
    first = client.post("/api/chat", json={"text": "English"})
    assert first.status_code == 200
    res = client.post("/api/chat", json={"postback": "topic:housing"})
    body = res.json()
    assert body["replies"][0]["text"].startswith("Common questions about Housing")
    assert body["replies"][0]["choices"][0]["value"].startswith("faq:housing.")


def test_open_event_gets_welcome(client: TestClient) -> None:
    res = client.post("/api/chat", json={"event": "open"})
    assert "小諸市" in res.json()["replies"][0]["text"]


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"", b"[1, 2]", b'"text"', b'{"text": 5}', b'{"text": null}', b"\xff\xfe",
     # an id that cannot be stored (PostgreSQL refuses NUL): found by the hostile-input tests
     b'{"text": "hi", "id": "\\u0000"}', b'{"text": "hi", "id": "a\\nb"}'],
)  # fmt: skip
def test_malformed_bodies_get_a_clear_400(client: TestClient, body: bytes) -> None:
    res = client.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert res.status_code == 400
    assert "error" in res.json() and "Traceback" not in res.text


def test_huge_and_odd_text_is_answered(client: TestClient) -> None:
    for text in ["a" * 10_000, "😀", "\u0000", "   "]:
        res = client.post("/api/chat", json={"text": text})
        assert res.status_code == 200 and res.json()["replies"]


def test_oversized_body_is_refused(client: TestClient) -> None:
    res = client.post("/api/chat", content=b'{"text": "' + b"a" * 70_000 + b'"}')
    assert res.status_code == 413


def test_double_submit_with_same_id_answers_once(client: TestClient) -> None:
    client.get("/")
    first = client.post("/api/chat", json={"text": "English", "id": "m-1"})
    again = client.post("/api/chat", json={"text": "English", "id": "m-1"})
    assert first.json()["replies"] and again.json()["replies"] == []


def test_readyz_reports_database(client: TestClient) -> None:
    # /healthz only says the process is up; the database is /readyz's business.
    res = client.get("/readyz")
    assert res.status_code == 200 and res.json()["database"] == "ok"


def test_staff_messages_reach_the_web_chat_on_its_next_poll(client: TestClient) -> None:
    from bot.storage.bookings import enqueue

    client.get("/")
    client.post("/api/chat", json={"text": "担当者と話したい"})
    visitor = client.cookies["iju_chat"]
    runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def queue() -> None:
        async with runtime.sessions() as session, session.begin():
            enqueue(
                session, key="staff-reply:test", channel="web", address=visitor,
                replies=[Reply("担当の佐藤です。")], now=runtime.clock(),
            )  # fmt: skip

    assert client.portal is not None
    client.portal.call(queue)
    first = client.get("/api/chat/updates").json()["replies"]
    assert [r["text"] for r in first] == ["担当の佐藤です。"]
    assert client.get("/api/chat/updates").json()["replies"] == []  # delivered once


def test_a_database_failure_is_a_message_the_page_can_show(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy.exc import OperationalError

    async def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("SELECT 1", {}, Exception("connection refused"))

    monkeypatch.setattr(client.app.state.runtime.engine, "handle", down)  # type: ignore[attr-defined]
    res = client.post("/api/chat", json={"text": "空き家バンクについて教えて"})
    assert res.status_code == 503
    assert res.json()["error"]["ja"].startswith("ただいま応答できません")
    assert "Traceback" not in res.text and "OperationalError" not in res.text
