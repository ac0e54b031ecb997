"""Talking to a person: the bot steps aside while staff answer, and comes back."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.fake import FakeChannel
from bot.runtime import Runtime
from bot.storage import handoffs
from bot.storage.models import Handoff, MessageLog
from tests.conftest import Clock
from tests.signup.helpers import RecordingPusher, text, values


async def the_handoff(runtime: Runtime) -> Handoff:
    async with runtime.sessions() as s:
        handoff = await s.scalar(select(Handoff))
    assert handoff is not None
    return handoff


async def test_asking_for_a_person_silences_the_bot_and_keeps_the_messages(
    runtime: Runtime,
) -> None:
    chan = FakeChannel(runtime.engine, channel="line", user_id="U9")
    assert "担当者におつなぎします" in text(await chan.say("担当者と話したい"))
    assert (await the_handoff(runtime)).status == "waiting"
    assert await chan.say("空き家バンクとは何ですか？") == []  # staff will answer this one
    async with runtime.sessions() as s:
        said = (await s.scalars(select(MessageLog.text).where(MessageLog.direction == "in"))).all()
    assert "空き家バンクとは何ですか？" in said


async def test_staff_reply_goes_out_on_the_persons_channel(runtime: Runtime, clock: Clock) -> None:
    chan = FakeChannel(runtime.engine, channel="line", user_id="U9")
    await chan.say("担当者と話したい")
    handoff = await the_handoff(runtime)
    async with runtime.sessions() as s, s.begin():
        await handoffs.staff_reply(
            s, handoff.id, None, "移住担当の佐藤です。ご質問をどうぞ。", clock.now
        )
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    await runtime.worker().tick()
    assert pusher.sent[0][0] == "U9" and "佐藤" in text(pusher.sent[0][1])
    assert (await the_handoff(runtime)).status == "active"


async def test_staff_hand_back_tells_the_person_and_the_bot_answers_again(
    runtime: Runtime, clock: Clock
) -> None:
    chan = FakeChannel(runtime.engine, channel="line", user_id="U9")
    await chan.say("担当者と話したい")
    handoff = await the_handoff(runtime)
    async with runtime.sessions() as s, s.begin():
        await handoffs.return_to_bot(s, runtime.policy, handoff.id, clock.now)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    await runtime.worker().tick()
    assert "自動応答に戻ります" in text(pusher.sent[0][1])
    assert await chan.say("メニュー")


async def test_quiet_handoff_returns_to_the_bot_after_the_idle_time(
    runtime: Runtime, clock: Clock
) -> None:
    chan = FakeChannel(runtime.engine, channel="line", user_id="U9")
    await chan.say("担当者と話したい")
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    clock.advance(minutes=60)
    await runtime.worker().tick()
    assert pusher.sent == []
    clock.advance(minutes=61)
    await runtime.worker().tick()
    assert "しばらくやり取りがなかった" in text(pusher.sent[0][1])
    assert (await the_handoff(runtime)).closed_by == "idle"


async def test_person_can_take_the_bot_back(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    await chan.say("talk to a person")
    back = await chan.say("ボットに戻る")
    assert "自動応答に戻りました" in text(back)
    assert (await the_handoff(runtime)).status == "closed"


async def test_two_unanswered_questions_in_a_row_offer_a_person(runtime: Runtime) -> None:
    chan = FakeChannel(runtime.engine)
    first = await chan.say("パスポートの申請方法")
    assert "handoff:request" not in values(first)
    second = await chan.say("確定申告はどこでできますか")
    assert "handoff:request" in values(second)
    await chan.press("handoff:request")
    assert (await the_handoff(runtime)).reason == "unanswered"
