"""Reminders fire by moving the injected clock: exactly once, late if missed, never at night."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import select

from bot.channels.fake import FakeChannel
from bot.delivery import Unreachable
from bot.messages import Reply
from bot.runtime import Runtime
from bot.storage.models import Delivery, Person, Reminder, Signup
from bot.storage.tours import cancel_tour
from tests.conftest import Clock
from tests.signup.helpers import RecordingPusher, fill_individual, make_tour, text, values

JST = timedelta(hours=9)


async def signed_up(
    runtime: Runtime, clock: Clock, days_ahead: int = 30
) -> tuple[FakeChannel, int]:
    tour = await make_tour(runtime, clock.now, days_ahead=days_ahead)
    chan = FakeChannel(runtime.engine, channel="line", user_id="U1")
    await fill_individual(chan, tour)
    await chan.press("form:confirm")
    return chan, tour


async def reminder_due(runtime: Runtime, kind: str) -> datetime:
    async with runtime.sessions() as s:
        due = await s.scalar(select(Reminder.due_at).where(Reminder.kind == kind))
    assert due is not None
    return due


async def test_seven_day_reminder_is_sent_once_at_ten_in_the_morning(
    runtime: Runtime, clock: Clock
) -> None:
    chan, _tour = await signed_up(runtime, clock)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    worker = runtime.worker()
    due = await reminder_due(runtime, "7d")
    assert (due + JST).hour == 10  # 10:00 Asia/Tokyo

    clock.now = due - timedelta(minutes=1)
    await worker.tick()
    assert pusher.sent == []
    clock.now = due + timedelta(seconds=5)
    await worker.tick()
    await worker.tick()  # a second tick, or a second worker, sends nothing more
    assert len(pusher.sent) == 1
    address, replies, retry_key = pusher.sent[0]
    assert address == "U1" and "リマインダー" in text(replies) and "あと7日" in text(replies)
    assert retry_key and len(retry_key) == 36

    attend = next(v for v in values(replies) if v.startswith("booking:attend:"))
    assert "ありがとうございます" in text(await chan.press(attend))
    async with runtime.sessions() as s:
        assert (await s.scalar(select(Signup))).attending  # type: ignore[union-attr]


async def test_reminder_cancel_button_cancels_the_signup_and_later_reminders(
    runtime: Runtime, clock: Clock
) -> None:
    chan, _tour = await signed_up(runtime, clock)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    clock.now = await reminder_due(runtime, "7d")
    await runtime.worker().tick()
    cancel = next(v for v in values(pusher.sent[0][1]) if v.startswith("booking:cancel:"))
    sure = await chan.press(cancel)
    await chan.press(next(v for v in values(sure) if "cancel-yes" in v))
    clock.now = await reminder_due(runtime, "1d")
    await runtime.worker().tick()
    assert len(pusher.sent) == 1  # the 1-day reminder was cancelled with the sign-up


async def test_missed_reminder_goes_out_late_but_not_after_the_tour(
    runtime: Runtime, clock: Clock
) -> None:
    await signed_up(runtime, clock)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    due_7d = await reminder_due(runtime, "7d")
    clock.now = due_7d + timedelta(days=2)  # the worker was down for two days
    await runtime.worker().tick()
    assert len(pusher.sent) == 1 and "あと5日" in text(pusher.sent[0][1])
    clock.now = await reminder_due(runtime, "1d") + timedelta(days=5)  # long after the start
    await runtime.worker().tick()
    assert len(pusher.sent) == 1
    async with runtime.sessions() as s:
        states = dict((await s.execute(select(Reminder.kind, Reminder.state))).all())
    assert states == {"7d": "queued", "1d": "dropped"}


async def test_late_reminder_waits_for_the_morning(runtime: Runtime, clock: Clock) -> None:
    await signed_up(runtime, clock)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    due = await reminder_due(runtime, "7d")
    clock.now = due + timedelta(hours=13)  # 23:00 in Komoro
    run, _ = await runtime.worker().tick()
    assert pusher.sent == [] and run.waiting == 1
    clock.now = due + timedelta(hours=22)  # 08:00 next morning
    await runtime.worker().tick()
    assert len(pusher.sent) == 1


async def test_signup_close_to_the_tour_gets_only_the_reminders_still_ahead(
    runtime: Runtime, clock: Clock
) -> None:
    await signed_up(runtime, clock, days_ahead=4)
    async with runtime.sessions() as s:
        kinds = (await s.scalars(select(Reminder.kind))).all()
    assert list(kinds) == ["1d"]


async def test_blocked_person_is_marked_unreachable(runtime: Runtime, clock: Clock) -> None:
    await signed_up(runtime, clock)
    runtime.pushers["line"] = RecordingPusher(fail_with=Unreachable())
    clock.now = await reminder_due(runtime, "7d")
    _, report = await runtime.worker().tick()
    assert report.skipped == 1
    async with runtime.sessions() as s:
        assert (await s.scalar(select(Person))).reachable is False  # type: ignore[union-attr]


async def test_platform_failure_is_retried_later_not_lost(runtime: Runtime, clock: Clock) -> None:
    await signed_up(runtime, clock)
    pusher = RecordingPusher(fail_with=RuntimeError("HTTP 500"))
    runtime.pushers["line"] = pusher
    clock.now = await reminder_due(runtime, "7d")
    _, report = await runtime.worker().tick()
    assert report.retried == 1 and pusher.sent == []
    pusher.fail_with = None
    await runtime.worker().tick()
    assert pusher.sent == []  # backing off: not yet
    clock.advance(minutes=1)
    await runtime.worker().tick()
    assert len(pusher.sent) == 1


async def test_cancelled_tour_tells_every_participant(runtime: Runtime, clock: Clock) -> None:
    _chan, tour = await signed_up(runtime, clock)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    async with runtime.sessions() as s, s.begin():
        told = await cancel_tour(s, runtime.policy, tour, clock.now)
    assert told == 1
    await runtime.worker().tick()
    assert "中止" in text(pusher.sent[0][1])
    clock.now = await reminder_due(runtime, "7d")
    await runtime.worker().tick()
    assert len(pusher.sent) == 1
    async with runtime.sessions() as s:
        signup = await s.scalar(select(Signup))
        keys = (await s.scalars(select(Delivery.key))).all()
    assert signup is not None and signup.status == "cancelled"
    assert list(keys) == [f"tour-cancelled:{signup.id}"]


async def test_my_data_and_deletion(runtime: Runtime, clock: Clock) -> None:
    chan, _ = await signed_up(runtime, clock)
    shown = await chan.say("私のデータ")
    assert "小諸 花子" in text(shown)
    ask = await chan.say("データを削除")
    assert "privacy:delete-yes" in values(ask)
    assert "削除しました" in text(await chan.press("privacy:delete-yes"))
    async with runtime.sessions() as s:
        assert (await s.scalars(select(Signup))).all() == []
    after = await chan.say("私のデータ")
    assert "小諸 花子" not in text(after)


async def test_moving_the_date_moves_the_reminders(runtime: Runtime, clock: Clock) -> None:
    chan, _tour = await signed_up(runtime, clock, days_ahead=20)
    later = await make_tour(runtime, clock.now, days_ahead=40)
    pusher = RecordingPusher()
    runtime.pushers["line"] = pusher
    clock.now = await reminder_due(runtime, "7d")
    await runtime.worker().tick()
    assert len(pusher.sent) == 1
    async with runtime.sessions() as s:
        signup_id = await s.scalar(select(Signup.id))
    await chan.press(f"booking:moveto:{signup_id}:{later}")
    clock.now = await reminder_due(runtime, "7d")
    await runtime.worker().tick()
    assert len(pusher.sent) == 2 and "あと7日" in text(pusher.sent[1][1])


class HangingPusher(RecordingPusher):
    """A platform that takes as long as the test wants: like a 10,000-chat Telegram send."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        self.started.set()
        await self.release.wait()
        await super().push(address, replies, retry_key=retry_key)


async def test_a_long_send_does_not_hold_back_reminders(runtime: Runtime, clock: Clock) -> None:
    # Two people: the first one's reminder is being sent (and hangs), the second one's falls
    # due meanwhile and must still be queued by the housekeeping job.
    await signed_up(runtime, clock)
    tour = await make_tour(runtime, clock.now, days_ahead=30)
    other = FakeChannel(runtime.engine, channel="line", user_id="U2")
    await fill_individual(other, tour)
    await other.press("form:confirm")
    async with runtime.sessions() as s, s.begin():
        first, second = (await s.scalars(select(Reminder).where(Reminder.kind == "7d"))).all()
        second.due_at = first.due_at + timedelta(hours=1)
    pusher = HangingPusher()
    runtime.pushers["line"] = pusher
    worker = runtime.worker()

    clock.now = first.due_at + timedelta(seconds=5)
    await worker.housekeeping()
    sending = asyncio.create_task(worker.deliver())
    await pusher.started.wait()
    clock.now = second.due_at + timedelta(seconds=5)
    run = await asyncio.wait_for(worker.housekeeping(), timeout=30)  # must not wait for it
    assert run.queued == 1
    pusher.release.set()
    await sending
    await worker.deliver()
    assert sorted(address for address, _, _ in pusher.sent) == ["U1", "U2"]


def test_housekeeping_and_delivery_are_separate_scheduled_jobs(runtime: Runtime) -> None:
    scheduler = AsyncIOScheduler()
    runtime.worker().schedule(scheduler, every_seconds=15)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"iju-worker-housekeeping", "iju-worker-delivery"}
    assert all(job.max_instances == 1 for job in jobs.values())
