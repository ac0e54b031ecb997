"""Security: bodies that used to reach a 5xx, replays long after the first delivery,
hostile names and messages as the staff console shows them, and login lock-out."""

from __future__ import annotations

import json

import pytest

from tests.channels.conftest import Running, line_event
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform

DEEP = b"[" * 20_000 + b"]" * 20_000  # 40 kB, deeper than Python's JSON parser recurses


async def test_deeply_nested_json_is_a_400_not_a_500(platform_app: Running) -> None:
    line = await platform_app.post_line(b'{"destination": "U", "events": ' + DEEP + b"}")
    telegram = await platform_app.post_telegram(DEEP)
    chat = await platform_app.client.post(
        "/api/chat", content=DEEP, headers={"content-type": "application/json"}
    )
    assert [line.status_code, telegram.status_code, chat.status_code] == [400, 400, 400]
    assert "Recursion" not in line.text + telegram.text + chat.text


@pytest.mark.parametrize("event_id", ["01ABC\x00", "\u202e" * 3, " \n"])
async def test_unstorable_event_id_is_skipped_not_a_503(
    platform_app: Running, fake: FakePlatform, clock: Clock, event_id: str
) -> None:
    """An event id that is no ULID (NUL, which PostgreSQL cannot store, controls, RTL marks)
    is skipped like a missing one; the other events of the body are answered."""
    odd = line_event("text_message", clock, webhookEventId=event_id)
    fine = line_event("text_message", clock, user="U" + "b" * 32)
    payload = {"destination": "U" + "0" * 32, "events": [odd, fine]}
    body = json.dumps(payload, ensure_ascii=True).encode()  # the surrogate as a \\ud800 escape
    res = await platform_app.post_line(body)
    assert res.status_code == 200
    await platform_app.drain()
    assert len(fake.line_sends()) == 1  # the well-formed event in the same body is answered


@pytest.mark.parametrize("field", ["user", "text", "replyToken"])
async def test_lone_surrogates_are_a_400_not_a_503(
    platform_app: Running, fake: FakePlatform, clock: Clock, field: str
) -> None:
    """A lone surrogate (valid JSON as a \\ud800 escape, not valid UTF-8) in a signed body
    used to fail the inbox insert: a 503 for ever, as LINE kept redelivering it."""
    event = line_event("text_message", clock, **{field: "a\ud800b"})
    body = json.dumps({"destination": "U" + "0" * 32, "events": [event]}).encode()
    assert (await platform_app.post_line(body)).status_code == 400
    update = {"update_id": 5, "message": {"message_id": 1, "date": 0, "text": "\udfff",
              "chat": {"id": 7, "type": "private"}, "from": {"id": 7, "is_bot": False,
              "first_name": "\ud800"}}}  # fmt: skip
    assert (await platform_app.post_telegram(json.dumps(update).encode())).status_code == 400
    # The web chat's text went to the analyser, which failed on it (an ERROR and no answer).
    chat = await platform_app.client.post("/api/chat", content=b'{"text": "\\ud800?"}')
    assert chat.status_code == 400 and "error" in chat.json()
    await platform_app.drain()
    assert fake.line_sends() == [] and fake.telegram("sendMessage") == []
