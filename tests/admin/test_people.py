"""A person's page, export and erasure (all audited), and names that are not what they seem."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from bot.storage.models import AuditEntry, MessageLog, Signup
from tests.admin import data
from tests.admin.conftest import Console

XSS = "<script>alert(1)</script>"
SQLI = "' OR 1=1 --"


def _person_with_data(
    console: Console, name: str = "山田 太郎", user: str = "U-person-1"
) -> dict[str, int]:
    now = console.runtime.clock()

    async def make(session):  # type: ignore[no-untyped-def]
        tour = data.tour(session, now, title=f"ツアー {XSS}")
        who = data.person(session, user=user, created_at=now)
        await session.flush()
        signup = data.signup(session, tour, who, now, name=name)
        data.message(session, who, f"こんにちは {XSS}", now)
        handoff = data.handoff(session, who, now)
        await session.flush()
        return {"person": who.id, "tour": tour.id, "signup": signup.id, "handoff": handoff.id}

    return console.db(make)


def _actions(console: Console) -> list[tuple[str, str]]:
    async def read(session):  # type: ignore[no-untyped-def]
        rows = await session.execute(select(AuditEntry.action, AuditEntry.subject))
        return [tuple(r) for r in rows.all()]

    return console.db(read)


def test_person_page_shows_profile_signups_messages_and_is_audited(staff: Console) -> None:
    ids = _person_with_data(staff)
    page = staff.client.get(f"/admin/people/{ids['person']}")
    assert page.status_code == 200
    assert "U-person-1" in page.text and "山田 太郎" in page.text and "こんにちは" in page.text
    assert ("person.view", f"person:{ids['person']}") in _actions(staff)
    listing = staff.client.get("/admin/people")
    assert f"/admin/people/{ids['person']}" in listing.text
    assert "山田 太郎" not in listing.text  # names only on the audited page
    jump = staff.client.get("/admin/people?id=%23" + str(ids["person"]))
    assert jump.headers["location"] == f"/admin/people/{ids['person']}"


def test_export_downloads_everything_as_json_and_is_audited(staff: Console) -> None:
    ids = _person_with_data(staff)
    res = staff.post(f"/admin/people/{ids['person']}/export.json", page="/admin/people")
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("application/json")
    assert "attachment" in res.headers["content-disposition"]
    body = json.loads(res.content)
    assert body["person"]["platform_user_id"] == "U-person-1"
    assert body["signups"][0]["name"] == "山田 太郎"
    assert body["messages"][0]["text"] == f"こんにちは {XSS}"
    assert ("person.export", f"person:{ids['person']}") in _actions(staff)


def test_export_needs_the_csrf_token(staff: Console) -> None:
    ids = _person_with_data(staff)
    res = staff.client.post(f"/admin/people/{ids['person']}/export.json")
    assert res.status_code == 403 and res.json()["error"] == "invalid CSRF token"


def test_delete_erases_the_persons_data_and_is_audited(staff: Console) -> None:
    ids = _person_with_data(staff)
    page = f"/admin/people/{ids['person']}"
    kept = staff.post(f"{page}/delete", page=page, follow=True)
    assert "確認のチェック" in kept.text
    res = staff.post(f"{page}/delete", {"confirm": "yes"}, page=page, follow=True)
    assert "データを削除しました" in res.text

    async def left(session):  # type: ignore[no-untyped-def]
        signups = await session.scalar(
            select(func.count()).select_from(Signup).where(Signup.person_id == ids["person"])
        )
        messages = await session.scalar(
            select(func.count())
            .select_from(MessageLog)
            .where(MessageLog.person_id == ids["person"])
        )
        return signups, messages

    assert staff.db(left) == (0, 0)
    assert ("person.delete", f"person:{ids['person']}") in _actions(staff)
    # The audit log names the person by number only: nothing of what they wrote or are called.
    assert all("山田" not in subject for _, subject in _actions(staff))


def test_hostile_names_are_shown_as_text_everywhere(admin: Console) -> None:
    for name in (XSS, SQLI):
        ids = _person_with_data(admin, name=name, user=f"U-{len(name)}")
        pages = [
            f"/admin/people/{ids['person']}",
            f"/admin/tours/{ids['tour']}/signups",
            f"/admin/inbox/{ids['handoff']}",
            "/admin/tours",
            "/admin/",
        ]
        for path in pages:
            text = admin.client.get(path).text
            assert "<script>alert(1)</script>" not in text, path
        person_page = admin.client.get(f"/admin/people/{ids['person']}").text
        escaped = "&lt;script&gt;alert(1)&lt;/script&gt;" if name == XSS else "&#39; OR 1=1 --"
        assert escaped in person_page


def test_unknown_person_is_404(staff: Console) -> None:
    assert staff.client.get("/admin/people/999").status_code == 404
    res = staff.post("/admin/people/999/export.json", page="/admin/people")
    assert res.status_code == 404
