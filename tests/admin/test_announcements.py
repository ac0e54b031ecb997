"""Announcements from the console: segment counts, preview, test, send now, schedule, cancel,
and the history's delivered / failed / skipped figures once the worker has sent them."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from bot.storage.models import Announcement, AuditEntry, Delivery, StaffAccount
from tests.admin import data
from tests.admin.conftest import STAFF, Console, RecordingPusher
from tests.conftest import Clock

TEXT = "【お知らせ】冬の移住相談会を開催します。"


def _people(console: Console) -> dict[str, int]:
    """A small town: 3 LINE residents (ja, ja, en), 1 LINE company, 2 Telegram residents
    (one blocked the bot), one of them signed up for a tour with interest in farming."""
    now = console.runtime.clock()

    async def make(session):  # type: ignore[no-untyped-def]
        line_ja = data.person(session, user="U-ja-1", created_at=now - timedelta(days=40))
        data.person(session, user="U-ja-2", created_at=now - timedelta(days=3))
        line_en = data.person(session, user="U-en-1", language="en", created_at=now)
        data.person(session, user="U-co-1", audience="company", created_at=now)
        tg = data.person(session, channel="telegram", user="tg-1", created_at=now)
        data.person(session, channel="telegram", user="tg-2", reachable=False, created_at=now)
        tour = data.tour(session, now)
        await session.flush()
        data.signup(session, tour, tg, now, interests=("farming",))
        data.signup(session, tour, line_en, now, status="waitlisted", interests=("housing",))
        data.signup(session, tour, line_ja, now, status="cancelled", interests=("farming",))
        await session.flush()
        return {"tour": tour.id}

    return console.db(make)


def _count(page: str) -> int:
    found = re.search(r'id="recipient-count"[^>]*>\s*(\d+)人に届きます', page)
    assert found, page.split('id="recipient-count"')[1][:300]
    return int(found.group(1))


def _compose(**fields: Any) -> dict[str, Any]:
    return {"text_ja": TEXT, "text_en": "Winter migration fair.", "mode": "now"} | fields


def test_compose_page_and_history_render(staff: Console) -> None:
    page = staff.client.get("/admin/announcements")
    assert page.status_code == 200
    assert 'name="channels" value="line"' in page.text and "まだお知らせはありません" in page.text


def test_recipient_counts_follow_the_segment(staff: Console) -> None:
    ids = _people(staff)
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 5),  # everyone reachable; the blocked Telegram user is left out
        ({"channels": ["line"]}, 4),
        ({"channels": ["telegram"]}, 1),
        ({"audiences": ["company"]}, 1),
        ({"channels": ["line"], "languages": ["en"]}, 1),
        ({"interests": ["farming"]}, 1),  # a cancelled sign-up's interests do not count
        ({"interests": ["farming", "housing"]}, 2),
        ({"tour_id": str(ids["tour"])}, 2),  # confirmed and waiting list
        ({"followed_since": "2026-11-20"}, 4),
        ({"channels": ["line"], "audiences": ["resident"], "languages": ["ja"]}, 2),
    ]
    for segment, expected in cases:
        page = staff.post("/admin/announcements", _compose(do="count", **segment))
        assert page.status_code == 200, segment
        assert _count(page.text) == expected, segment
        token = staff.csrf("/admin/announcements")
        live = staff.client.post(
            "/admin/announcements/count", data=segment, headers={"x-csrf-token": token}
        )
        assert live.json()["total"] == expected, segment
    blocked = staff.post("/admin/announcements", _compose(do="count", channels=["telegram"]))
    assert "配信できない1人を除く" in blocked.text


def test_count_endpoint_needs_the_token(staff: Console) -> None:
    res = staff.client.post("/admin/announcements/count", data={})
    assert res.status_code == 403


def test_preview_per_channel_and_language(staff: Console) -> None:
    page = staff.post(
        "/admin/announcements",
        _compose(do="preview", link_label="詳しく見る", link_url="https://city.example.jp/fair"),
    )
    assert page.status_code == 200
    previews = page.text.split('id="previews"')[1]
    for channel in ("line", "telegram"):
        assert f'data-channel="{channel}" data-lang="ja"' in previews
    assert TEXT in previews and "Winter migration fair." in previews
    assert "[詳しく見る] → https://city.example.jp/fair" in previews
    assert TEXT in page.text.split('name="text_ja"')[1]  # the form keeps the text


def test_invalid_announcements_are_refused_with_the_reason(staff: Console) -> None:
    empty = staff.post("/admin/announcements", _compose(do="send", text_ja="  "))
    assert empty.status_code == 400 and 'role="alert"' in empty.text
    bad_link = staff.post(
        "/admin/announcements",
        _compose(do="send", link_label="見る", link_url="http://insecure.example"),
    )
    assert bad_link.status_code == 400
    no_time = staff.post("/admin/announcements", _compose(do="send", mode="later"))
    assert no_time.status_code == 400 and "予約の日時" in no_time.text

    async def count(session):  # type: ignore[no-untyped-def]
        return len((await session.scalars(select(Announcement))).all())

    assert staff.db(count) == 0


def test_send_now_reaches_the_segment_through_the_worker(staff: Console) -> None:
    _people(staff)
    pusher = RecordingPusher()
    staff.runtime.pushers.update(line=pusher, telegram=pusher)
    res = staff.post(
        "/admin/announcements", _compose(do="send", channels=["line"], languages=["ja"])
    )
    assert res.status_code == 303
    detail = res.headers["location"]
    assert "送信します（3人）" in staff.client.get(detail).text
    staff.run(lambda: staff.runtime.worker().tick())
    staff.run(lambda: staff.runtime.worker().tick())
    reached = sorted({to for to, _ in pusher.sent})
    assert reached == ["U-co-1", "U-ja-1", "U-ja-2"]
    assert TEXT in pusher.texts_for("U-ja-1")[0]
    history = staff.client.get("/admin/announcements").text.split('id="history"')[1]
    assert re.search(r'class="num delivered">3<', history)

    async def audited(session):  # type: ignore[no-untyped-def]
        return (await session.scalars(select(AuditEntry.action))).all()

    assert "announcement.create" in staff.db(audited)


def test_history_counts_failed_and_skipped(staff: Console) -> None:
    _people(staff)
    staff.runtime.pushers.update(telegram=RecordingPusher())
    res = staff.post("/admin/announcements", _compose(do="send", channels=["telegram"]))
    announcement_id = int(res.headers["location"].rsplit("/", 1)[1])
    staff.run(lambda: staff.runtime.worker().tick())

    async def mark(session):  # type: ignore[no-untyped-def]
        await session.execute(
            update(Delivery)
            .where(Delivery.announcement_id == announcement_id)
            .values(status="failed")
        )

    staff.db(mark)
    page = staff.client.get(f"/admin/announcements/{announcement_id}").text
    figures = page.split('id="figures"')[1]
    assert re.search(r'class="num failed">1<', figures)
    assert re.search(r'class="num skipped">\d+<', figures)


def test_schedule_test_send_now_and_cancel(staff: Console) -> None:
    _people(staff)
    pusher = RecordingPusher()
    staff.runtime.pushers.update(line=pusher, telegram=pusher)
    scheduled = staff.post(
        "/admin/announcements",
        _compose(do="send", mode="later", send_at="2026-11-30T09:00", channels=["telegram"]),
    )
    page_url = scheduled.headers["location"]
    announcement_id = int(page_url.rsplit("/", 1)[1])
    page = staff.client.get(page_url).text
    assert "予約中" in page and "2026-11-30 09:00" in page

    # A test to staff's own chat (an admin registered it for them), before anyone else gets it.
    async def own_chat(session):  # type: ignore[no-untyped-def]
        account = await session.scalar(select(StaffAccount).where(StaffAccount.email == STAFF))
        account.test_recipients = ["telegram:staff-chat"]

    staff.db(own_chat)
    tested = staff.post(
        f"{page_url}/test", {"channel": "telegram", "address": "staff-chat"}, page=page_url
    )
    assert tested.status_code == 303
    staff.run(lambda: staff.runtime.worker().tick())
    assert [to for to, _ in pusher.sent] == ["staff-chat"]
    # Not yet due: the worker leaves it; "send now" brings it forward.
    assert staff.post(f"{page_url}/send-now", page=page_url).status_code == 303
    staff.run(lambda: staff.runtime.worker().tick())
    assert "tg-1" in {to for to, _ in pusher.sent}
    too_late = staff.post(f"{page_url}/cancel", page=page_url, follow=True)
    assert "すでに送信中か、終了しています" in too_late.text

    second = staff.post(
        "/admin/announcements",
        _compose(do="send", mode="later", send_at="2026-12-01T09:00"),
    )
    second_url = second.headers["location"]
    cancelled = staff.post(f"{second_url}/cancel", page=second_url, follow=True)
    assert "予約を取り消しました" in cancelled.text and "取消" in cancelled.text

    async def statuses(session):  # type: ignore[no-untyped-def]
        rows = await session.execute(select(Announcement.id, Announcement.status))
        return dict(rows.all())

    found = staff.db(statuses)
    assert found[announcement_id] in ("sending", "sent")
    assert found[int(second_url.rsplit("/", 1)[1])] == "cancelled"


def test_scheduled_announcement_fires_when_the_clock_reaches_it(
    staff: Console, clock: Clock
) -> None:
    _people(staff)
    pusher = RecordingPusher()
    staff.runtime.pushers.update(line=pusher, telegram=pusher)
    # 2026-11-24 10:00 in Tokyo now; scheduled for 12:00.
    staff.post(
        "/admin/announcements",
        _compose(do="send", mode="later", send_at="2026-11-24T12:00", channels=["line"]),
    )
    staff.run(lambda: staff.runtime.worker().tick())
    assert pusher.sent == []
    clock.advance(hours=2)
    staff.run(lambda: staff.runtime.worker().tick())
    assert {to for to, _ in pusher.sent} == {"U-ja-1", "U-ja-2", "U-en-1", "U-co-1"}


def test_unknown_announcement_is_404(staff: Console) -> None:
    assert staff.client.get("/admin/announcements/999").status_code == 404
    assert staff.post("/admin/announcements/999/cancel").status_code == 404
