"""Segment counts: channel, audience, language, interests, tour, followed since, unreachable."""

from __future__ import annotations

from datetime import timedelta

from bot.announcements import Segment, count_recipients
from bot.runtime import Runtime
from tests.conftest import Clock
from tests.delivery.helpers import add_people, add_signup
from tests.signup.helpers import make_tour


async def _population(runtime: Runtime, clock: Clock) -> dict[str, list[int]]:
    old = clock() - timedelta(days=60)
    return {
        "line_ja": await add_people(runtime, 3),
        "line_en_co": await add_people(runtime, 2, language="en", audience="company"),
        "line_old": await add_people(runtime, 2, created_at=old, prefix="old"),
        "line_blocked": await add_people(runtime, 1, reachable=False),
        "tg_ja": await add_people(runtime, 2, channel="telegram"),
        "tg_blocked": await add_people(runtime, 1, channel="telegram", reachable=False),
        "web": await add_people(runtime, 1, channel="web"),
        "console": await add_people(runtime, 1, channel="console"),
    }


async def count(runtime: Runtime, segment: Segment) -> tuple[dict[str, int], int, int]:
    async with runtime.sessions() as session:
        c = await count_recipients(session, segment)
    return c.per_channel, c.total, c.unreachable


async def test_everyone_is_every_deliverable_person(runtime: Runtime, clock: Clock) -> None:
    await _population(runtime, clock)
    # The console person has no channel to be reached on; blocked people are counted apart.
    assert await count(runtime, Segment()) == ({"line": 7, "telegram": 2, "web": 1}, 10, 2)


async def test_channel_audience_language(runtime: Runtime, clock: Clock) -> None:
    await _population(runtime, clock)
    assert await count(runtime, Segment(channels=("telegram",))) == ({"telegram": 2}, 2, 1)
    assert await count(runtime, Segment(audiences=("company",))) == ({"line": 2}, 2, 0)
    assert await count(runtime, Segment(languages=("en",))) == ({"line": 2}, 2, 0)
    assert await count(runtime, Segment(channels=("line",), languages=("ja",))) == (
        {"line": 5}, 5, 1,
    )  # fmt: skip


async def test_followed_since(runtime: Runtime, clock: Clock) -> None:
    await _population(runtime, clock)
    since = clock() - timedelta(days=30)
    per, total, _ = await count(runtime, Segment(channels=("line",), followed_since=since))
    assert per == {"line": 5} and total == 5  # the two old followers are left out


async def test_tour_participants_and_interests(runtime: Runtime, clock: Clock) -> None:
    people = await _population(runtime, clock)
    tour = await make_tour(runtime, clock())
    other = await make_tour(runtime, clock(), days_ahead=40)
    a, b, c = people["line_ja"]
    t1, _ = people["tg_ja"]
    await add_signup(runtime, a, tour, interests=["housing", "childcare"])
    await add_signup(runtime, t1, tour, status="waitlisted", interests=["work"])
    await add_signup(runtime, b, tour, status="cancelled", interests=["housing"])
    await add_signup(runtime, c, other, interests=["childcare"])
    await add_signup(runtime, people["line_blocked"][0], tour, interests=["housing"])

    assert await count(runtime, Segment(tour_id=tour)) == ({"line": 1, "telegram": 1}, 2, 1)
    # Interests from any sign-up that still stands (b cancelled theirs).
    assert await count(runtime, Segment(interests=("housing",))) == ({"line": 1}, 1, 1)
    assert await count(runtime, Segment(interests=("childcare", "work"))) == (
        {"line": 2, "telegram": 1}, 3, 0,
    )  # fmt: skip
    assert await count(runtime, Segment(interests=("childcare",), tour_id=other)) == (
        {"line": 1}, 1, 0,
    )  # fmt: skip
    assert await count(runtime, Segment(interests=("nothing-like-it",))) == ({}, 0, 0)


def test_segment_json_round_trip(clock: Clock) -> None:
    segment = Segment(("line",), ("company",), ("en",), ("housing",), 3, clock())
    assert Segment.from_json(segment.to_json()) == segment
    assert Segment.from_json({}) == Segment()
