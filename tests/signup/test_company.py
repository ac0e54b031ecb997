"""Companies (mostly on Telegram): a site visit, or an online meeting with preferred slots."""

from __future__ import annotations

from sqlalchemy import select

from bot.channels.fake import FakeChannel
from bot.runtime import Runtime
from bot.storage.models import Signup
from tests.conftest import Clock
from tests.signup.helpers import make_tour, text


async def start_company_form(chan: FakeChannel) -> None:
    await chan.press("signup:start:company")
    await chan.say("株式会社サンプル")
    await chan.say("山田 一郎")
    await chan.say("yamada@example.co.jp")
    await chan.say("+81 3-1234-5678")
    await chan.say("4")
    await chan.press("form:satellite_office")


async def test_company_online_meeting_with_two_slots(runtime: Runtime, clock: Clock) -> None:
    meeting = await make_tour(runtime, clock.now, kind="online_meeting", days_ahead=5)
    chan = FakeChannel(runtime.engine, channel="telegram", user_id="4242")
    await start_company_form(chan)
    dates = await chan.press("form:online_meeting")
    assert "日程を選んでください" in text(dates)
    await chan.press(f"form:tour:{meeting}")
    past = await chan.say("1/1 10:00 2020")
    assert "読み取れませんでした" in text(past)
    await chan.say("12/5 14:00")
    second = await chan.say("12月8日 10時")
    assert "form:done" in [c.value for r in second for c in r.choices]
    await chan.press("form:done")
    await chan.press("form:none")
    screen = await chan.press("form:agree")
    assert "株式会社サンプル" in text(screen) and "0312345678" in text(screen)
    assert "受け付けました" in text(await chan.press("form:confirm"))
    async with runtime.sessions() as s:
        signup = await s.scalar(select(Signup))
    assert signup is not None and signup.form == "company" and signup.seats == 1
    assert len(signup.details["slots"]) == 2
    assert signup.details["purpose"] == "satellite_office"


async def test_company_site_visit_counts_visitors_as_seats(runtime: Runtime, clock: Clock) -> None:
    visit = await make_tour(runtime, clock.now, kind="site_visit", days_ahead=10)
    chan = FakeChannel(runtime.engine, channel="telegram", user_id="99")
    await start_company_form(chan)
    await chan.press("form:site_visit")
    await chan.press(f"form:tour:{visit}")
    await chan.press("form:none")
    await chan.press("form:agree")
    await chan.press("form:confirm")
    async with runtime.sessions() as s:
        signup = await s.scalar(select(Signup))
    assert signup is not None and signup.seats == 4 and "slots" not in signup.details


async def test_bad_phone_and_visitor_count_are_refused(runtime: Runtime, clock: Clock) -> None:
    await make_tour(runtime, clock.now, kind="site_visit")
    chan = FakeChannel(runtime.engine, channel="telegram", user_id="7")
    await chan.press("signup:start:company")
    await chan.say("株式会社サンプル")
    await chan.say("山田 一郎")
    await chan.say("yamada@example.co.jp")
    assert "10〜11桁" in text(await chan.say("12345"))
    await chan.say("０３－１２３４－５６７８")
    assert "1〜10" in text(await chan.say("0"))
