"""Seats, the waiting list and promotion; the last-seat race never overbooks."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.channels.fake import FakeChannel
from bot.runtime import Runtime
from bot.storage.models import Delivery, Signup
from tests.conftest import Clock
from tests.signup.helpers import fill_individual, make_tour, text, values


async def all_signups(runtime: Runtime) -> list[Signup]:
    async with runtime.sessions() as s:
        return list((await s.scalars(select(Signup).order_by(Signup.id))).all())


async def test_full_tour_offers_waiting_list_and_cancellation_promotes(
    runtime: Runtime, clock: Clock
) -> None:
    tour = await make_tour(runtime, clock.now, capacity=3)
    alice = FakeChannel(runtime.engine, user_id="alice", channel="line")
    bob = FakeChannel(runtime.engine, user_id="bob", channel="line")
    await fill_individual(alice, tour, adults="2", children="1")
    assert "受け付けました" in text(await alice.press("form:confirm"))

    await fill_individual(bob, tour, adults="1", children="0")
    full = await bob.press("form:confirm")
    assert "満席" in text(full) and "form:waitlist" in values(full)
    waiting = await bob.press("form:waitlist")
    assert "キャンセル待ち" in text(waiting)
    assert [s.status for s in await all_signups(runtime)] == ["confirmed", "waitlisted"]

    bookings = await alice.say("予約確認")
    cancel = next(v for v in values(bookings) if v.startswith("booking:cancel:"))
    sure = await alice.press(cancel)
    assert "よろしいですか" in text(sure)
    done = await alice.press(next(v for v in values(sure) if "cancel-yes" in v))
    assert "キャンセルしました" in text(done)

    statuses = [s.status for s in await all_signups(runtime)]
    assert statuses == ["cancelled", "confirmed"]
    async with runtime.sessions() as s:
        told = (await s.scalars(select(Delivery).where(Delivery.key.like("promoted:%")))).all()
    assert [d.address for d in told] == ["bob"]
    assert "参加が確定しました" in told[0].replies[0]["text"]


async def test_last_seat_race_never_overbooks(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now, capacity=1)
    people = [FakeChannel(runtime.engine, user_id=f"p{n}") for n in range(5)]
    for chan in people:
        await fill_individual(chan, tour, adults="1", children="0")
    results = await asyncio.gather(*(chan.press("form:confirm") for chan in people))
    confirmed = [r for r in results if "受け付けました" in text(r)]
    full = [r for r in results if "満席" in text(r)]
    assert len(confirmed) == 1 and len(full) == 4
    rows = await all_signups(runtime)
    assert [s.status for s in rows] == ["confirmed"]


async def test_other_people_cannot_cancel_my_signup(runtime: Runtime, clock: Clock) -> None:
    tour = await make_tour(runtime, clock.now)
    alice = FakeChannel(runtime.engine, user_id="alice")
    await fill_individual(alice, tour)
    await alice.press("form:confirm")
    [signup] = await all_signups(runtime)
    mallory = FakeChannel(runtime.engine, user_id="mallory")
    replies = await mallory.press(f"booking:cancel-yes:{signup.id}")
    assert "見つかりませんでした" in text(replies)
    assert (await all_signups(runtime))[0].status == "confirmed"


async def test_move_to_another_date(runtime: Runtime, clock: Clock) -> None:
    first = await make_tour(runtime, clock.now, days_ahead=20)
    second = await make_tour(runtime, clock.now, days_ahead=40)
    chan = FakeChannel(runtime.engine)
    await fill_individual(chan, first)
    await chan.press("form:confirm")
    [signup] = await all_signups(runtime)
    choose = await chan.press(f"booking:move:{signup.id}")
    assert f"booking:moveto:{signup.id}:{second}" in values(choose)
    moved = await chan.press(f"booking:moveto:{signup.id}:{second}")
    assert "日程を変更しました" in text(moved)
    assert (await all_signups(runtime))[0].tour_id == second
