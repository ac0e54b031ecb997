"""Complete sign-ups through the real SDKs and the fake platforms: an individual on LINE, a
company on Telegram; then the reminder goes out by LINE push with a retry key."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from bot.pushers import LinePusher
from bot.storage.models import Reminder, Signup
from bot.storage.tours import NewTour, add_tour
from tests.channels.conftest import Running, line_body, line_event, tg_update
from tests.conftest import Clock
from tests.fakes.platform import FakePlatform


async def make_tour(running: Running, clock: Clock, kind: str) -> int:
    start = clock.now + timedelta(days=30)
    async with running.app.state.runtime.sessions() as session, session.begin():
        tour = await add_tour(
            session,
            NewTour(kind, "体験ツアー", "Tour", start, start + timedelta(days=3), 10,
                    start - timedelta(days=5), "小諸駅"),
            clock.now,
        )  # fmt: skip
        return tour.id


class LineUser:
    def __init__(self, running: Running, fake: FakePlatform, clock: Clock) -> None:
        self.running, self.fake, self.clock = running, fake, clock

    async def _send(self, event: dict[str, object]) -> str:
        self.fake.clear()
        response = await self.running.post_line(line_body(event))
        assert response.status_code == 200
        await self.running.drain()
        return "\n".join(
            m.get("text", "") for r in self.fake.line_sends() for m in r.body["messages"]
        )

    async def say(self, text: str) -> str:
        return await self._send(line_event("text_message", self.clock, text=text))

    async def press(self, data: str) -> str:
        return await self._send(line_event("postback", self.clock, data=data))


async def test_individual_signs_up_on_line_and_is_reminded(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    tour = await make_tour(platform_app, clock, "experience")
    person = LineUser(platform_app, fake, clock)
    assert "日程を選んでください" in await person.say("ツアーに申し込みたい")
    assert "お名前" in await person.press(f"form:tour:{tour}")
    await person.say("小諸 花子")
    await person.say("こもろ はなこ")
    assert "1〜6" in await person.say("hanako@example.jp") + await person.say("9")
    await person.say("2")  # adults, typed
    await person.press("form:0")
    await person.say("東京都")
    await person.press("form:telework")
    await person.press("form:toggle:housing")
    await person.press("form:done")
    await person.press("form:none")
    screen = await person.press("form:agree")
    assert "小諸 花子" in screen and "hanako@example.jp" in screen
    assert "受け付けました" in await person.press("form:confirm")

    runtime = platform_app.app.state.runtime
    async with runtime.sessions() as session:
        signup = await session.scalar(select(Signup))
        due = await session.scalar(select(Reminder.due_at).where(Reminder.kind == "7d"))
    assert signup is not None and signup.seats == 2 and due is not None

    runtime.pushers["line"] = LinePusher(platform_app.line.api)
    fake.clear()
    clock.now = due
    await runtime.worker().tick()
    [push] = [r for r in fake.line_sends() if r.path.endswith("/push")]
    assert "リマインダー" in push.body["messages"][0]["text"]
    assert push.headers.get("x-line-retry-key")


async def test_company_requests_an_online_meeting_on_telegram(
    platform_app: Running, fake: FakePlatform, clock: Clock
) -> None:
    meeting = await make_tour(platform_app, clock, "online_meeting")

    async def send(update: dict[str, object]) -> str:
        fake.clear()
        assert (await platform_app.post_telegram(update)).status_code == 200
        await platform_app.drain()
        return "\n".join(r.body.get("text", "") for r in fake.telegram("sendMessage"))

    async def say(text: str) -> str:
        return await send(tg_update("text_message", text=text))

    async def press(data: str) -> str:
        return await send(tg_update("callback_query", data=data))

    assert "会社名" in await press("signup:start")  # Telegram people are companies by default
    await say("株式会社サンプル")
    await say("山田 一郎")
    await say("yamada@example.co.jp")
    await say("03-1234-5678")
    await say("3")
    await press("form:workation")
    await press("form:online_meeting")
    await press(f"form:tour:{meeting}")
    await say("12/5 14:00")
    await say("12/8 10:00")
    await press("form:done")
    await press("form:none")
    assert "株式会社サンプル" in await press("form:agree")
    assert "受け付けました" in await press("form:confirm")
    runtime = platform_app.app.state.runtime
    async with runtime.sessions() as session:
        signup = await session.scalar(select(Signup))
    assert (
        signup is not None and signup.form == "company" and signup.details["purpose"] == "workation"
    )
