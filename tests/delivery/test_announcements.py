"""Announcements: validation, scheduling on the injected clock, cancel, idempotent release,
preview, test copies and the history figures."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import bot.announcement_release as release_module
from bot.announcements import (
    AnnouncementError,
    AnnouncementTexts,
    Segment,
    cancel_announcement,
    create_announcement,
    history,
    preview,
    release_due,
    send_test,
    take_web_replies,
)
from bot.runtime import Runtime
from bot.storage.models import Announcement, Delivery
from tests.conftest import Clock
from tests.delivery.helpers import RecordingPlatform, add_people, outbox


async def announce(
    runtime: Runtime, clock: Clock, *, segment: Segment | None = None, **fields: Any
) -> int:
    values: dict[str, Any] = {
        "text_ja": "移住フェアを開きます。",
        "text_en": "We hold a migration fair.",
        "link_label": "詳しく",
        "link_url": "https://example.jp/fair",
        "send_at": None,
    }
    values.update(fields)
    async with runtime.sessions() as session, session.begin():
        ann = await create_announcement(
            session, staff_id=None, segment=segment or Segment(), now=clock(), **values
        )
        return ann.id


async def status(runtime: Runtime, announcement_id: int) -> str:
    async with runtime.sessions() as session:
        ann = await session.get(Announcement, announcement_id)
        assert ann is not None
        return ann.status


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"text_ja": "  "}, "text_required"),
        ({"text_ja": "あ" * 4097}, "text_too_long_ja"),
        ({"text_en": "😀" * 2049}, "text_too_long_en"),  # 4,098 UTF-16 units
        ({"link_url": "http://example.jp/"}, "link_url"),
        ({"link_url": "javascript:alert(1)"}, "link_url"),
        ({"link_label": ""}, "link_label"),
        ({"link_label": "とても長いリンクの表示名でございます二十字超"}, "link_label"),
    ],
)
async def test_refused_with_a_japanese_reason(
    runtime: Runtime, clock: Clock, fields: dict[str, Any], key: str
) -> None:
    with pytest.raises(AnnouncementError) as caught:
        await announce(runtime, clock, **fields)
    assert caught.value.key == key
    assert any("\u3040" <= ch <= "\u30ff" for ch in str(caught.value))  # kana: Japanese


async def test_refuses_bad_segment_and_past_time(runtime: Runtime, clock: Clock) -> None:
    with pytest.raises(AnnouncementError, match="fax"):
        await announce(runtime, clock, segment=Segment(channels=("fax",)))
    with pytest.raises(AnnouncementError) as caught:
        await announce(runtime, clock, send_at=clock() - timedelta(minutes=5))
    assert caught.value.key == "send_at"


async def test_scheduled_fires_when_the_clock_reaches_it(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 3)
    await add_people(runtime, 2, channel="telegram", language="en")
    line, telegram = RecordingPlatform(), RecordingPlatform()
    runtime.pushers.update(line=line, telegram=telegram)
    worker = runtime.worker()
    ann = await announce(runtime, clock, send_at=clock() + timedelta(hours=2))

    clock.advance(hours=1, minutes=59)
    await worker.tick()
    assert (await status(runtime, ann), line.multicasts, telegram.pushes) == ("scheduled", [], [])

    clock.advance(minutes=1)
    await worker.tick()
    assert len(line.multicasts) == 1 and len(line.multicasts[0][0]) == 3
    assert [r.text for r in line.multicasts[0][1]] == ["移住フェアを開きます。"]
    assert [r.text for _, replies, _ in telegram.pushes for r in replies] == [
        "We hold a migration fair."
    ] * 2
    assert await status(runtime, ann) == "sent"
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.recipients, report.delivered, report.failed, report.skipped) == (5, 5, 0, 0)


async def test_cancel_before_it_fires(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 2)
    line = RecordingPlatform()
    runtime.pushers["line"] = line
    ann = await announce(runtime, clock, send_at=clock() + timedelta(hours=1))
    async with runtime.sessions() as session, session.begin():
        assert await cancel_announcement(session, ann, clock())
    clock.advance(hours=2)
    await runtime.worker().tick()
    assert line.multicasts == [] and await outbox(runtime) == []
    assert await status(runtime, ann) == "cancelled"
    # Once started, it can no longer be cancelled.
    started = await announce(runtime, clock)
    await release_due(runtime.sessions, clock())
    async with runtime.sessions() as session, session.begin():
        assert not await cancel_announcement(session, started, clock())


async def test_unreachable_people_are_skipped_and_counted(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 2)
    await add_people(runtime, 3, reachable=False)
    ann = await announce(runtime, clock)
    await release_due(runtime.sessions, clock())
    (row,) = await outbox(runtime, ann)
    assert row.recipients is not None and len(row.recipients) == 2
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.recipients, report.skipped, report.pending) == (2, 3, 2)


def _reached(rows: list[Delivery]) -> Counter[str]:
    got: Counter[str] = Counter()
    for row in rows:
        got.update(row.recipients if row.recipients is not None else [row.address])
    return got


async def test_release_twice_queues_nothing_twice(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 7)
    await add_people(runtime, 4, channel="telegram")
    ann = await announce(runtime, clock)
    first = await release_due(runtime.sessions, clock(), batch=3)
    again = await release_due(runtime.sessions, clock(), batch=3)
    rows = await outbox(runtime, ann)
    assert again == 0 and first == len(rows)
    reached = _reached(rows)
    assert len(reached) == 11 and set(reached.values()) == {1}
    assert len({r.key for r in rows}) == len({r.retry_key for r in rows}) == len(rows)


async def test_racing_releases_queue_everyone_once(runtime: Runtime, clock: Clock) -> None:
    import asyncio

    await add_people(runtime, 25)
    await add_people(runtime, 10, channel="telegram")
    ann = await announce(runtime, clock)
    await asyncio.gather(*(release_due(runtime.sessions, clock(), batch=4) for _ in range(3)))
    reached = _reached(await outbox(runtime, ann))
    assert len(reached) == 35 and set(reached.values()) == {1}
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert report.recipients == 35


async def test_crash_between_batches_then_rerun(
    runtime: Runtime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_people(runtime, 10)
    await add_people(runtime, 5, channel="telegram")
    await add_people(runtime, 5, language="en")
    ann = await announce(runtime, clock)
    real = release_module._expand_batch
    calls = 0

    async def dies_on_the_third_batch(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise SystemExit("worker killed")
        return await real(*args)

    monkeypatch.setattr(release_module, "_expand_batch", dies_on_the_third_batch)
    with pytest.raises(SystemExit):
        await release_due(runtime.sessions, clock(), batch=6)
    half = _reached(await outbox(runtime, ann))
    assert sum(half.values()) == 12  # two batches of six committed, the third never was

    monkeypatch.setattr(release_module, "_expand_batch", real)
    await release_due(runtime.sessions, clock(), batch=6)
    reached = _reached(await outbox(runtime, ann))
    assert len(reached) == 20 and set(reached.values()) == {1}
    async with runtime.sessions() as session:
        ann_row = await session.get(Announcement, ann)
        assert ann_row is not None
        assert (ann_row.recipients, ann_row.expanded_at is not None) == (20, True)


async def test_multicast_batches_hold_500_with_a_key_each(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 1234)
    await add_people(runtime, 501, language="en")
    ann = await announce(runtime, clock)
    await release_due(runtime.sessions, clock())
    rows = await outbox(runtime, ann)
    sizes = sorted(len(r.recipients or []) for r in rows)
    assert sizes == [1, 234, 500, 500, 500]
    assert all(r.address == "multicast" and r.channel == "line" for r in rows)
    assert len({r.retry_key for r in rows}) == 5
    english = [r for r in rows if ":line:en:" in r.key]
    assert sorted(len(r.recipients or []) for r in english) == [1, 500]
    assert english[0].replies[0]["text"] == "We hold a migration fair."


async def test_english_people_get_japanese_without_an_english_text(
    runtime: Runtime, clock: Clock
) -> None:
    await add_people(runtime, 2, language="en")
    ann = await announce(runtime, clock, text_en="")
    await release_due(runtime.sessions, clock())
    (row,) = await outbox(runtime, ann)
    assert ":line:ja:" in row.key and row.replies[0]["text"] == "移住フェアを開きます。"


def test_preview_per_channel() -> None:
    texts = AnnouncementTexts("お知らせです。" * 800, "News.", "詳しく", "https://example.jp/a")
    line = preview(texts, "line", "ja")
    assert len(line) == 2  # 5,600 characters: two LINE messages, the button on the last
    assert all(len(r.text) <= 5000 for r in line) and line[-1].links[0].url.endswith("/a")
    telegram = preview(texts, "telegram", "ja")
    assert len(telegram) == 2 and all(len(r.text) <= 4096 for r in telegram)
    assert telegram[-1].links[0].label == "詳しく"
    assert [r.text for r in preview(texts, "web", "en")] == ["News."]


async def test_send_test_queues_one_marked_copy(runtime: Runtime, clock: Clock) -> None:
    (staff,) = await add_people(runtime, 1, channel="telegram", language="en")
    ann = await announce(runtime, clock, send_at=clock() + timedelta(days=1))
    async with runtime.sessions() as session, session.begin():
        await send_test(session, ann, "telegram", "100000", clock())
    (row,) = await outbox(runtime)
    assert (row.address, row.person_id, row.announcement_id) == ("100000", staff, None)
    assert row.replies[0]["text"] == "[Test] We hold a migration fair."
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.status, report.recipients, report.pending) == ("scheduled", 0, 0)


async def test_web_chat_visitors_collect_on_their_next_poll(runtime: Runtime, clock: Clock) -> None:
    await add_people(runtime, 2, channel="web", prefix="visitor")
    ann = await announce(runtime, clock)
    await runtime.worker().tick()
    async with runtime.sessions() as session, session.begin():
        visitor = (
            await session.scalars(select(Delivery.address).where(Delivery.channel == "web"))
        ).first()
        assert visitor is not None
        got = await take_web_replies(session, visitor, clock())
        assert [r.text for r in got] == ["移住フェアを開きます。"]
        assert await take_web_replies(session, visitor, clock()) == []
    # A visitor who never comes back does not keep the announcement "sending".
    await runtime.worker().tick()
    assert await status(runtime, ann) == "sent"
    async with runtime.sessions() as session:
        (report,) = await history(session)
    assert (report.delivered, report.pending) == (1, 1)
