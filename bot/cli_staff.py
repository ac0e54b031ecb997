"""Staff accounts from the command line: `python -m bot staff add EMAIL --role admin`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any, TextIO

from bot.admin.accounts import ROLES, AccountError, create_staff
from bot.admin.i18n import console_catalog
from bot.config import load_settings
from bot.engine import utc_now
from bot.storage import migrate
from bot.storage.db import create_engine, session_factory


class PasswordInputError(Exception):
    pass


def read_password(from_stdin: bool, stdin: TextIO | None = None) -> str:
    """Twice at a terminal (never echoed), or one line from stdin for scripts and CI."""
    stdin = sys.stdin if stdin is None else stdin
    if from_stdin or not stdin.isatty():
        line = stdin.readline()
        return line.rstrip("\r\n")
    first = getpass.getpass("Password (12+ characters): ")
    second = getpass.getpass("Password again: ")
    if first != second:
        raise PasswordInputError("the two passwords differ")
    return first


def cmd_staff_add(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    try:
        password = read_password(args.password_stdin)
    except PasswordInputError as exc:
        print(f"staff add: {exc}", file=sys.stderr)
        return 1
    catalog = console_catalog()

    async def run() -> tuple[int, str] | str:
        db = create_engine(settings.database.url, root=settings.root)
        try:
            if settings.database.is_sqlite:  # the embedded database may not exist yet
                await migrate.upgrade(db)
            async with session_factory(db)() as session, session.begin():
                account = await create_staff(session, args.email, password, args.role, utc_now())
                return account.id, account.email
        except AccountError as exc:
            return catalog.text(str(exc), "en", min=12)
        finally:
            await db.dispose()

    result = asyncio.run(run())
    if isinstance(result, str):
        print(f"staff add: {result}", file=sys.stderr)
        return 1
    staff_id, email = result
    print(f"staff account {staff_id} created: {email} ({args.role}); sign in at /admin/login")
    return 0


def register(sub: Any) -> None:
    staff = sub.add_parser("staff", help="staff accounts for the web console (/admin)")
    staff_sub = staff.add_subparsers(dest="staff_command", required=True)
    add = staff_sub.add_parser("add", help="create a console account (asks for the password twice)")
    add.add_argument("email")
    add.add_argument("--role", choices=ROLES, default="staff")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (also used when not a terminal)",
    )
    add.set_defaults(func=cmd_staff_add)
