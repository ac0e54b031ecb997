"""Tours and sign-ups in the console: list, admin create/edit/close/cancel, waiting list, CSV."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from bot.storage.models import AuditEntry, Delivery, Signup, Tour
from tests.admin import data
from tests.admin.conftest import Console


def _form(**changes: str) -> dict[str, str]:
    values = {
        "kind": "experience",
        "title_ja": "冬の移住体験ツアー",
        "title_en": "Winter migration tour",
        "starts_at": "2027-01-20T13:00",
        "ends_at": "2027-01-22T15:00",
        "deadline": "2027-01-10T17:00",
        "capacity": "8",
        "place": "小諸駅",
        "description_ja": "",
        "description_en": "",
    }
    return values | changes


def _tour_with_people(console: Console, capacity: int = 2) -> dict[str, int]:
    now = console.runtime.clock()

    async def make(session):  # type: ignore[no-untyped-def]
        tour = data.tour(session, now, capacity=capacity)
        people = [data.person(session, created_at=now) for _ in range(3)]
        await session.flush()
        first = data.signup(session, tour, people[0], now, seats=2, name="先着 花子")
        waiting = data.signup(
            session,
            tour,
            people[1],
            now + timedelta(minutes=1),
            status="waitlisted",
            name="待ち 一郎",
        )
        data.signup(
            session,
            tour,
            people[2],
            now + timedelta(minutes=2),
            status="waitlisted",
            name="待ち 二郎",
        )
        await session.flush()
        return {"tour": tour.id, "first": first.id, "waiting": waiting.id}

    return console.db(make)


def test_admin_creates_a_tour_in_local_time(admin: Console) -> None:
    res = admin.post("/admin/tours/new", _form(), page="/admin/tours/new")
    assert res.status_code == 303
    page = admin.client.get("/admin/tours")
    assert "冬の移住体験ツアー" in page.text and "2027-01-20 13:00" in page.text

    async def stored(session):  # type: ignore[no-untyped-def]
        return await session.scalar(select(Tour).where(Tour.title_ja == "冬の移住体験ツアー"))

    tour = admin.db(stored)
    assert tour.starts_at.isoformat() == "2027-01-20T04:00:00+00:00"  # 13:00 in Tokyo
    assert tour.capacity == 8


def test_bad_tour_input_is_shown_again_with_the_problem(admin: Console) -> None:
    res = admin.post("/admin/tours/new", _form(starts_at="tomorrow"), page="/admin/tours/new")
    assert res.status_code == 400 and "日時を正しく入力" in res.text
    assert 'value="冬の移住体験ツアー"' in res.text  # what was typed is kept
    res = admin.post("/admin/tours/new", _form(ends_at="2027-01-19T10:00"), page="/admin/tours/new")
    assert res.status_code == 400 and "end: must be after the start" in res.text


def test_edit_capacity_fills_from_the_waiting_list(admin: Console) -> None:
    ids = _tour_with_people(admin)
    form = admin.client.get(f"/admin/tours/{ids['tour']}/edit")
    assert form.status_code == 200 and 'value="2"' in form.text
    values = {
        name: value
        for name, value in _form().items()
        if name not in ("starts_at", "ends_at", "deadline")
    }

    async def dates(session):  # type: ignore[no-untyped-def]
        tour = await session.get(Tour, ids["tour"])
        tz = admin.runtime.settings.bot.tz
        return {
            k: getattr(tour, k).astimezone(tz).strftime("%Y-%m-%dT%H:%M")
            for k in ("starts_at", "ends_at", "deadline")
        }

    res = admin.post(
        f"/admin/tours/{ids['tour']}/edit", values | admin.db(dates) | {"capacity": "3"}
    )
    assert res.status_code == 303

    async def status(session):  # type: ignore[no-untyped-def]
        return (await session.get(Signup, ids["waiting"])).status

    assert admin.db(status) == "confirmed"


def test_edit_refuses_new_dates_once_people_signed_up(admin: Console) -> None:
    ids = _tour_with_people(admin)
    res = admin.post(f"/admin/tours/{ids['tour']}/edit", _form(capacity="5"))
    assert res.status_code == 400 and "日時は変更できません" in res.text


def test_close_and_cancel_with_notice_to_participants(admin: Console) -> None:
    ids = _tour_with_people(admin)
    assert admin.post(f"/admin/tours/{ids['tour']}/close").status_code == 303
    unconfirmed = admin.post(f"/admin/tours/{ids['tour']}/cancel", follow=True)
    assert "確認のチェック" in unconfirmed.text
    res = admin.post(f"/admin/tours/{ids['tour']}/cancel", {"confirm": "yes"}, follow=True)
    assert "3件の申込者にお知らせしました" in res.text

    async def outcome(session):  # type: ignore[no-untyped-def]
        tour = await session.get(Tour, ids["tour"])
        notices = await session.scalar(
            select(func.count()).select_from(Delivery).where(Delivery.key.like("tour-cancelled:%"))
        )
        actions = (await session.scalars(select(AuditEntry.action))).all()
        return tour.status, notices, actions

    status, notices, actions = admin.db(outcome)
    assert status == "cancelled" and notices == 3
    assert "tour.close" in actions and "tour.cancel" in actions


def test_signups_page_shows_the_waiting_list_in_order_and_is_audited(staff: Console) -> None:
    ids = _tour_with_people(staff)
    page = staff.client.get(f"/admin/tours/{ids['tour']}/signups")
    assert page.status_code == 200
    waiting = page.text.split('id="signups-waitlisted"')[1].split("</table>")[0]
    assert waiting.index("待ち 一郎") < waiting.index("待ち 二郎")
    assert "先着 花子" in page.text.split('id="signups-confirmed"')[1].split("</table>")[0]
    # A staff member (not admin) reads sign-ups but gets no edit or cancel controls.
    tours = staff.client.get("/admin/tours").text
    assert f"/admin/tours/{ids['tour']}/cancel" not in tours

    async def audited(session):  # type: ignore[no-untyped-def]
        return (await session.scalars(select(AuditEntry.subject))).all()

    assert f"tour:{ids['tour']}" in staff.db(audited)


def test_csv_export_has_a_bom_opens_in_excel_and_is_audited(staff: Console) -> None:
    ids = _tour_with_people(staff)
    res = staff.client.get(f"/admin/tours/{ids['tour']}/signups.csv")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/csv")
    assert "attachment" in res.headers["content-disposition"]
    assert res.content.startswith(b"\xef\xbb\xbf")
    text = res.content.decode("utf-8-sig")
    assert "先着 花子" in text and "待ち 一郎" in text

    async def actions(session):  # type: ignore[no-untyped-def]
        return (await session.scalars(select(AuditEntry.action))).all()

    assert "tour.signups.export" in staff.db(actions)


def test_unknown_tour_is_a_404_page(admin: Console) -> None:
    assert admin.client.get("/admin/tours/999/signups").status_code == 404
    assert admin.client.get("/admin/tours/999/edit").status_code == 404
    assert admin.client.get("/admin/tours/999/signups.csv").status_code == 404
    assert admin.client.get("/admin/no-such-page").status_code == 404
