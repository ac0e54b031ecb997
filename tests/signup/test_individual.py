"""The individual sign-up form, end to end through the engine, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.channels.fake import FakeChannel
from bot.runtime import Runtime, build_runtime
from bot.storage.models import Reminder, Signup
from tests.conftest import Clock
from tests.signup.helpers import fill_individual, make_tour, text, values


async def signups(runtime: Runtime) -> list[Signup]:
    async with runtime.sessions() as s:
        return list((await s.scalars(select(Signup).order_by(Signup.id))).all())


async def test_complete_signup_stores_everything_and_plans_reminders(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine, channel="line")
    screen = await fill_individual(chan, tour)
    summary = text(screen)
    for shown in ("小諸 花子", "こもろ はなこ", "09012345678", "東京都", "テレワーク", "住まい"):
        assert shown in summary
    assert values(screen)[:2] == ["form:confirm", "form:edit"]
    done = await chan.press("form:confirm")
    assert "お申し込みを受け付けました" in text(done)
    [signup] = await signups(runtime)
    assert signup.status == "confirmed" and signup.seats == 3
    assert signup.details["contact"] == {"phone": "09012345678"}
    assert signup.details["interests"] == ["housing", "childcare"]
    assert signup.details["prefecture"] == "東京都"
    async with runtime.sessions() as s:
        kinds = (await s.scalars(select(Reminder.kind).order_by(Reminder.kind))).all()
    assert kinds == ["1d", "7d"]


async def test_confirming_twice_creates_one_signup(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await fill_individual(chan, tour)
    await chan.press("form:confirm")
    again = await chan.press("form:confirm")  # a double tap, or a redelivered postback
    assert "すでに受け付けています" in text(again)
    assert len(await signups(runtime)) == 1


async def test_invalid_answers_are_asked_again_with_a_reason(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    long_name = await chan.say("あ" * 10_000)
    assert "1〜50文字" in text(long_name) and "お名前" in text(long_name)
    await chan.say("小諸 太郎")
    await chan.say("こもろ たろう")
    bad_mail = await chan.say("taro@example")
    assert "メールアドレス" in text(bad_mail)
    await chan.say("taro@example.jp")
    assert "1〜6" in text(await chan.say("0"))
    assert "1〜6" in text(await chan.say("99"))
    await chan.say("5")
    too_many = await chan.say("3")  # 5 adults + 3 children is over the party limit
    assert "合わせて1〜6名" in text(too_many)
    assert await signups(runtime) == []


async def test_back_returns_to_the_previous_question(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    await chan.say("小諸 花子")
    back = await chan.say("戻る")
    assert "お名前（フルネーム）" in text(back)


async def test_faq_question_mid_form_is_answered_then_the_step_repeats(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    replies = await chan.press("faq:housing.akiya-bank")
    # A pressed FAQ button is not a name: the name is asked again.
    assert "お名前" in text(replies)
    asked = await chan.say("空き家バンクとは何ですか？")
    assert "空き家バンク" in text(asked) and "お名前（フルネーム）" in text(asked)
    async with runtime.sessions() as s:
        assert await s.scalar(select(func.count()).select_from(Signup)) == 0


async def test_language_switch_mid_form_asks_again_in_english(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    replies = await chan.say("English")
    assert "Please type your full name." in text(replies)


async def test_restart_and_second_process_lose_nothing(
    runtime: Runtime, clock: Clock, settings, faq_library
) -> None:
    tour = await make_tour(runtime, clock.now)
    await FakeChannel(runtime.engine, user_id="u1").say("ツアーに申し込みたい")
    await FakeChannel(runtime.engine, user_id="u1").press(f"form:tour:{tour}")
    other = await build_runtime(settings, clock=clock, library=faq_library)
    try:
        replies = await FakeChannel(other.engine, user_id="u1").say("小諸 花子")
        assert "ふりがな" in text(replies)
    finally:
        await other.aclose()


async def test_coming_back_after_a_day_asks_continue_or_start_over(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    await chan.say("小諸 花子")
    clock.advance(hours=25)
    ask = await chan.say("こもろ はなこ")
    assert "続きから" in text(ask) and "form:restart" in values(ask)
    resumed = await chan.press("form:continue")
    assert "ふりがな" in text(resumed)


async def test_tour_closed_while_typing_asks_for_another_date(
    runtime: Runtime, clock: Clock
) -> None:
    from bot.storage.tours import close_tour

    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await fill_individual(chan, tour)
    async with runtime.sessions() as s, s.begin():
        await close_tour(s, tour)
    replies = await chan.press("form:confirm")
    assert "受付は終了しました" in text(replies)
    assert await signups(runtime) == []


async def test_postback_for_a_missing_tour(runtime: Runtime, clock: Clock) -> None:
    await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    replies = await chan.press("form:tour:999999")
    assert "受付は終了しました" in text(replies) and "日程を選んでください" in text(replies)


async def test_no_open_tours_is_said_plainly(runtime: Runtime) -> None:
    replies = await FakeChannel(runtime.engine).say("ツアーに申し込みたい")
    assert "受け付けている日程はありません" in text(replies)


async def test_cancel_mid_form_drops_it(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await chan.say("ツアーに申し込みたい")
    await chan.press(f"form:tour:{tour}")
    assert "取り消しました" in text(await chan.say("やめる"))
    assert "お申し込み" not in text(await chan.say("小諸 花子"))


async def test_edit_from_confirmation_returns_to_it(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now)
    chan = FakeChannel(runtime.engine)
    await fill_individual(chan, tour)
    await chan.press("form:edit")
    await chan.press("form:edit:name")
    screen = await chan.say("小諸 次郎")
    assert "小諸 次郎" in text(screen) and "form:confirm" in values(screen)
