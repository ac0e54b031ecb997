"""Staff accounts: the CLI makes the first admin; admins add, lock out and reset others."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.__main__ import main
from bot.admin.accounts import hash_password
from bot.cli_staff import read_password
from bot.storage.models import AuditEntry, StaffAccount
from tests.admin.conftest import ADMIN, PASSWORD, STAFF, Console
from tests.conftest import ROOT


def test_admin_adds_a_staff_account_who_can_sign_in(admin: Console) -> None:
    res = admin.post(
        "/admin/staff",
        {"email": "New.Person@City.Example.jp", "role": "staff", "password": PASSWORD},
        page="/admin/staff",
        follow=True,
    )
    assert "new.person@city.example.jp" in res.text
    admin.post("/admin/logout")
    assert admin.login("new.person@city.example.jp").status_code == 303


def test_account_input_problems_are_shown(admin: Console) -> None:
    short = admin.post(
        "/admin/staff", {"email": STAFF, "role": "staff", "password": "short"}, page="/admin/staff"
    )
    assert short.status_code == 400 and "12文字以上" in short.text
    taken = admin.post(
        "/admin/staff", {"email": ADMIN, "role": "staff", "password": PASSWORD}, page="/admin/staff"
    )
    assert taken.status_code == 400 and "すでにあります" in taken.text


def test_the_last_admin_cannot_be_removed(admin: Console) -> None:
    async def my_id(session):  # type: ignore[no-untyped-def]
        return await session.scalar(select(StaffAccount.id).where(StaffAccount.email == ADMIN))

    me = admin.db(my_id)
    res = admin.post(f"/admin/staff/{me}", {"action": "make_staff"}, page="/admin/staff")
    assert res.status_code == 400 and "自分自身" in res.text


def test_password_reset_signs_the_old_sessions_out(console: Console) -> None:
    console.add_staff(ADMIN, "admin")
    staff_id = console.add_staff(STAFF)
    assert console.login(STAFF).status_code == 303
    staff_cookie = console.client.cookies["iju_console"]
    console.client.cookies.clear()
    assert console.login(ADMIN).status_code == 303
    new = "a brand new passphrase"
    res = console.post(f"/admin/staff/{staff_id}", {"action": "password", "password": new})
    assert res.status_code == 303
    console.client.cookies.clear()
    console.client.cookies.set("iju_console", staff_cookie)
    assert console.client.get("/admin/").status_code == 303  # the old session is over
    assert console.login(STAFF, new).status_code == 303

    async def actions(session):  # type: ignore[no-untyped-def]
        return (await session.scalars(select(AuditEntry.action))).all()

    assert "staff.password" in console.db(actions)


def test_audit_page_lists_actions_for_admins(admin: Console) -> None:
    admin.post("/admin/staff", {"email": STAFF, "role": "staff", "password": PASSWORD})
    page = admin.client.get("/admin/audit")
    assert page.status_code == 200 and "staff.create" in page.text


def test_cli_creates_the_first_admin_from_stdin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text((ROOT / "config.toml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}")
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    code = main(["--config", str(config), "staff", "add", ADMIN, "--role", "admin"])
    assert code == 0
    out = capsys.readouterr()
    assert "created" in out.out and PASSWORD not in out.out + out.err
    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    again = main(["--config", str(config), "staff", "add", ADMIN, "--password-stdin"])
    assert again == 1 and "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    weak = main(["--config", str(config), "staff", "add", STAFF, "--password-stdin"])
    assert weak == 1 and "at least 12" in capsys.readouterr().err


def test_terminal_password_is_asked_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    answers = iter(["first passphrase!", "other passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))
    with pytest.raises(Exception, match="differ"):
        read_password(False, Tty())
    same = iter(["same passphrase!!", "same passphrase!!"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(same))
    assert read_password(False, Tty()) == "same passphrase!!"


async def test_hashes_are_argon2id() -> None:
    assert (await hash_password(PASSWORD)).startswith("$argon2id$")
