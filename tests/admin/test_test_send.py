"""Test copies of an announcement (issue 15, defect 13): staff test-send only to the test
addresses an admin registered for them, admins anywhere, and every test is in the audit log
without the address itself."""

from __future__ import annotations

from sqlalchemy import select

from bot.storage.models import AuditEntry, Delivery, StaffAccount
from tests.admin import data
from tests.admin.conftest import STAFF, Console

TEXT = "【お知らせ】冬の移住相談会を開催します。"


def _scheduled(console: Console) -> str:
    """A scheduled announcement's page (tests are offered before it goes)."""
    made = console.post(
        "/admin/announcements",
        {"text_ja": TEXT, "mode": "later", "send_at": "2026-11-30T09:00", "channels": "telegram",
         "do": "send"},
    )  # fmt: skip
    assert made.status_code == 303
    return str(made.headers["location"])


def _tests_queued(console: Console) -> list[tuple[str, str]]:
    async def rows(session):  # type: ignore[no-untyped-def]
        found = await session.execute(
            select(Delivery.channel, Delivery.address).where(Delivery.key.like("anntest:%"))
        )
        return [tuple(r) for r in found]

    return console.db(rows)


def _audited(console: Console) -> list[tuple[str, str, str]]:
    async def rows(session):  # type: ignore[no-untyped-def]
        found = await session.execute(
            select(AuditEntry.action, AuditEntry.subject, AuditEntry.detail).where(
                AuditEntry.action == "announcement.test"
            )
        )
        return [tuple(r) for r in found]

    return console.db(rows)


def _give_test_recipients(console: Console, email: str, *recipients: str) -> None:
    async def give(session):  # type: ignore[no-untyped-def]
        account = await session.scalar(select(StaffAccount).where(StaffAccount.email == email))
        account.test_recipients = list(recipients)

    console.db(give)


def test_staff_cannot_test_send_to_a_residents_address(staff: Console) -> None:
    async def resident(session):  # type: ignore[no-untyped-def]
        now = staff.runtime.clock()
        data.person(session, channel="telegram", user="tg-resident", created_at=now)

    staff.db(resident)
    page = _scheduled(staff)
    refused = staff.post(
        f"{page}/test", {"channel": "telegram", "address": "tg-resident"}, page=page
    )
    assert refused.status_code == 403
    assert "管理者があなたのテスト用に登録した送り先だけです" in refused.text
    assert _tests_queued(staff) == []
    assert "テスト送信先が登録されていません" in staff.client.get(page).text


def test_staff_test_sends_to_their_own_address_and_it_is_audited(staff: Console) -> None:
    _give_test_recipients(staff, STAFF, "telegram:staff-phone")
    page = _scheduled(staff)
    assert "あなたのテスト送信先: telegram:staff-phone" in staff.client.get(page).text
    sent = staff.post(f"{page}/test", {"channel": "telegram", "address": "staff-phone"}, page=page)
    assert sent.status_code == 303
    assert _tests_queued(staff) == [("telegram", "staff-phone")]
    announcement = page.rsplit("/", 1)[1]
    [(action, subject, detail)] = _audited(staff)
    assert (action, subject) == ("announcement.test", f"announcement:{announcement}")
    assert detail.startswith("telegram") and "staff-phone" not in detail  # no platform id


def test_admin_may_test_send_anywhere_and_sets_staffs_test_addresses(admin: Console) -> None:
    staff_id = admin.add_staff(STAFF)
    page = _scheduled(admin)
    sent = admin.post(f"{page}/test", {"channel": "line", "address": "U-admin-phone"}, page=page)
    assert sent.status_code == 303
    assert _tests_queued(admin) == [("line", "U-admin-phone")]
    assert len(_audited(admin)) == 1

    bad = admin.post(f"/admin/staff/{staff_id}",
                     {"action": "test_recipients", "test_recipients": "fax:0123"})  # fmt: skip
    assert bad.status_code == 400 and "1行に1つ、10件まで" in bad.text
    good = admin.post(
        f"/admin/staff/{staff_id}",
        {"action": "test_recipients", "test_recipients": "telegram:555\nline:U-staff-phone\n"},
    )
    assert good.status_code == 303

    async def recipients(session):  # type: ignore[no-untyped-def]
        return (await session.get(StaffAccount, staff_id)).test_recipients

    assert admin.db(recipients) == ["telegram:555", "line:U-staff-phone"]

    async def changes(session):  # type: ignore[no-untyped-def]
        return list(await session.scalars(select(AuditEntry.subject).where(
            AuditEntry.action == "staff.test_recipients")))  # fmt: skip

    assert admin.db(changes) == [f"staff:{staff_id}"]
