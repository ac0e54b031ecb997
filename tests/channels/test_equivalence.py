"""The same conversation gives the same answers on LINE, Telegram, the console and web chat."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Awaitable, Callable

import pytest

from bot.channels.console import chat
from bot.channels.fake import FakeChannel
from tests.channels.conftest import Running, line_body, line_event, tg_update
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform

# Typed, typed, then the first offered choice, pressed the way each channel presses it.
CONVERSATION = ("English", "childcare")
_NUMBERED = re.compile(r"^\s+\d+\. .*$", re.MULTILINE)


def main_text(text: str) -> str:
    """A reply's own words, without the numbered choice lines a text channel adds."""
    return _NUMBERED.sub("", text).strip()


async def via_line(running: Running, fake: FakePlatform, clock: Clock) -> list[str]:
    said: list[str] = []
    for text in CONVERSATION:
        fake.clear()
        await running.post_line(line_body(line_event("text_message", clock, text=text)))
        await running.drain()
        [send] = fake.line_sends()
        said.append(main_text(send.body["messages"][0]["text"]))
    last = send.body["messages"][-1]
    fake.clear()
    if "quickReply" in last:
        data = last["quickReply"]["items"][0]["action"]["data"]
        event = line_event("postback", clock, data=data)
    else:
        event = line_event("text_message", clock, text="1")
    await running.post_line(line_body(event))
    await running.drain()
    said.append(main_text(fake.line_sends()[0].body["messages"][0]["text"]))
    return said


async def via_telegram(running: Running, fake: FakePlatform, clock: Clock) -> list[str]:
    said: list[str] = []
    for text in CONVERSATION:
        fake.clear()
        await running.post_telegram(tg_update("text_message", text=text))
        await running.drain()
        sends = fake.telegram("sendMessage")
        said.append(sends[0].body["text"])
    markup = json.loads(sends[-1].body["reply_markup"])
    fake.clear()
    data = markup["inline_keyboard"][0][0]["callback_data"]
    await running.post_telegram(tg_update("callback_query", data=data))
    await running.drain()
    said.append(fake.telegram("sendMessage")[0].body["text"])
    return said


async def via_console(running: Running, fake: FakePlatform, clock: Clock) -> list[str]:
    out = io.StringIO()
    engine = running.app.state.runtime.engine
    await chat(engine, "console-user", io.StringIO("\n".join([*CONVERSATION, "1"]) + "\n"), out)
    turns = out.getvalue().split("> ")[1:]
    # Each turn: the echoed line, then the reply blocks; the first block is the first reply.
    return [main_text(turn.split("\n", 1)[1].split("\n\n")[0]) for turn in turns]


async def via_web(running: Running, fake: FakePlatform, clock: Clock) -> list[str]:
    said: list[str] = []
    await running.client.get("/")  # the page gives the visitor's cookie
    for text in CONVERSATION:
        body = (await running.client.post("/api/chat", json={"text": text})).json()
        said.append(body["replies"][0]["text"])
    value = body["replies"][-1]["choices"][0]["value"]
    body = (await running.client.post("/api/chat", json={"postback": value})).json()
    said.append(body["replies"][0]["text"])
    return said


Transcript = Callable[[Running, FakePlatform, Clock], Awaitable[list[str]]]


@pytest.mark.parametrize(
    "transcript",
    [via_line, via_telegram, via_console, via_web],
    ids=["line", "telegram", "console", "web"],
)
async def test_same_conversation_same_answers(
    platform_app: Running, fake: FakePlatform, clock: Clock, transcript: Transcript
) -> None:
    # The reference: the engine itself, through the collecting test channel.
    person = FakeChannel(platform_app.app.state.runtime.engine, user_id="reference")
    expected = [(await person.say(text))[0].text for text in CONVERSATION]
    first_choice = person.received[-1].choices[0].value
    expected.append((await person.press(first_choice))[0].text)
    assert expected[0].startswith("I'll answer in English")
    assert "nurser" in expected[2].lower() or "childcare" in expected[2].lower()

    said = await transcript(platform_app, fake, clock)
    assert said == expected, "\n---\n".join(said)
