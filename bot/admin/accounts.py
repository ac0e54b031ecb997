"""Staff accounts: argon2 password hashes, sign-in with lock-out, creation from the CLI."""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

import anyio
import anyio.to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.storage.models import StaffAccount

ROLES = ("staff", "admin")
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
T = TypeVar("T")

# RFC 9106's second recommended profile (64 MiB, t=3) with one lane instead of four: argon2
# runs a thread per lane, so with four one hash took every core of the machine; with one it
# takes one core for about as much CPU time, and HASHES_AT_ONCE below then bounds the cores
# sign-ins can take. Hashes made with four lanes still verify and are redone at next sign-in.
_hasher = PasswordHasher(parallelism=1)

# A hash is ~300 ms of one core. It runs in a worker thread (argon2-cffi releases the GIL), so
# the event loop keeps answering webhooks, and one at a time per process, so a login flood
# queues here instead of taking every core from the webhooks and the `answer` processes.
HASHES_AT_ONCE = 1
# Sign-ins already waiting for the hasher beyond this are refused (429) rather than kept
# waiting for seconds: with one hash at a time, 16 in the queue is about 5 s.
MAX_WAITING = 16

_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)
_dummy: list[str] = []


class HasherBusy(Exception):
    """Too many sign-ins are already waiting for the hasher: try again shortly."""


def _limiter() -> anyio.CapacityLimiter:
    # One per event loop: a limiter belongs to the loop it was made in, and tests run many.
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(HASHES_AT_ONCE)
    return limiter


async def _hashing(fn: Callable[..., T], *args: str, refuse_when_busy: bool = False) -> T:
    limiter = _limiter()
    if refuse_when_busy and limiter.statistics().tasks_waiting >= MAX_WAITING:
        raise HasherBusy
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


async def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a wrong address costs as much as a
    wrong password and the response time does not tell which addresses have accounts."""
    if not _dummy:
        _dummy.append(await _hashing(_hasher.hash, "not a real password: timing equaliser"))
    return _dummy[0]


class AccountError(ValueError):
    """Input that cannot become an account (message key for the console catalog)."""


async def hash_password(password: str) -> str:
    return await _hashing(_hasher.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    return await _hashing(_verify, password_hash, password, refuse_when_busy=True)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError("staff.password_short")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AccountError("staff.email_invalid")
    return email


# A test recipient is "channel:address" (the staff member's own LINE user id, Telegram chat or
# web-chat visitor id); a handful is plenty, and an address is never longer than 128.
MAX_TEST_RECIPIENTS = 10
_TEST_RECIPIENT = re.compile(r"^(line|telegram|web):([\x21-\x7e]{1,128})$")


def parse_test_recipients(text: str) -> list[str]:
    """One "channel:address" a line, as an admin types them on the staff page."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > MAX_TEST_RECIPIENTS or not all(_TEST_RECIPIENT.match(x) for x in lines):
        raise AccountError("staff.test_recipients_invalid")
    return list(dict.fromkeys(lines))


def may_test_send(account: StaffAccount, channel: str, address: str) -> bool:
    """Admins test-send anywhere; staff only to the test recipients an admin gave them, so a
    test (which looks like a real announcement) cannot be sent to a resident."""
    return account.role == "admin" or f"{channel}:{address}" in (account.test_recipients or [])


def end_sessions(account: StaffAccount) -> None:
    """Sign the account out everywhere: every console cookie carries the epoch it was issued
    in, and guard.current_staff refuses one whose epoch is no longer the account's."""
    account.session_epoch = (account.session_epoch or 0) + 1


async def create_staff(
    session: AsyncSession, email: str, password: str, role: str, now: datetime
) -> StaffAccount:
    email = normalise_email(email)
    if role not in ROLES:
        raise AccountError("staff.role_invalid")
    check_new_password(password)
    if await session.scalar(select(StaffAccount.id).where(StaffAccount.email == email)):
        raise AccountError("staff.email_taken")
    account = StaffAccount(
        email=email,
        password_hash=await hash_password(password),
        role=role,
        active=True,
        created_at=now,
    )
    session.add(account)
    await session.flush()
    return account


async def count_admins(session: AsyncSession) -> int:
    return int(
        await session.scalar(
            select(func.count())
            .select_from(StaffAccount)
            .where(StaffAccount.role == "admin", StaffAccount.active.is_(True))
        )
        or 0
    )


class SignIn(StrEnum):
    OK = "ok"
    WRONG = "wrong"  # unknown e-mail, wrong password or inactive account: one answer for all
    LOCKED = "locked"


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    lock_for: timedelta = timedelta(minutes=15)


@dataclass(frozen=True)
class SignInResult:
    outcome: SignIn
    staff_id: int | None = None
    epoch: int = 0  # the account's session epoch, for the new session cookie


async def sign_in(
    sessions: async_sessionmaker[AsyncSession],
    email: str,
    password: str,
    now: datetime,
    policy: LockoutPolicy,
) -> SignInResult:
    """Check a password. After `max_failures` wrong ones in a row the account is locked for
    `lock_for`, even against the right password, so guessing is slowed to a crawl.

    The hash is checked outside any transaction: a sign-in queued for the hasher holds no
    database connection and no row lock. The outcome is then recorded under the row lock,
    re-reading the row, so concurrent wrong passwords all count."""
    try:
        address = normalise_email(email)
    except AccountError:
        address = ""
    async with sessions() as session:
        found = (
            await session.execute(
                select(
                    StaffAccount.id,
                    StaffAccount.password_hash,
                    StaffAccount.active,
                    StaffAccount.locked_until,
                ).where(StaffAccount.email == address)
            )
        ).first()
    if found is None or not found.active:
        await verify_password(await _dummy_hash(), password)
        return SignInResult(SignIn.WRONG)
    if found.locked_until is not None and found.locked_until > now:
        return SignInResult(SignIn.LOCKED)
    right = await verify_password(found.password_hash, password)
    new_hash = None
    if right and _hasher.check_needs_rehash(found.password_hash):
        new_hash = await hash_password(password)
    async with sessions() as session, session.begin():
        account = await session.scalar(
            select(StaffAccount).where(StaffAccount.id == found.id).with_for_update()
        )
        if account is None or not account.active:
            return SignInResult(SignIn.WRONG)
        if account.locked_until is not None and account.locked_until > now:
            return SignInResult(SignIn.LOCKED)  # locked by a concurrent attempt meanwhile
        if not right or account.password_hash != found.password_hash:
            account.failed_logins = (account.failed_logins or 0) + 1
            if account.failed_logins >= policy.max_failures:
                account.locked_until = now + policy.lock_for
                account.failed_logins = 0
                return SignInResult(SignIn.LOCKED)
            return SignInResult(SignIn.WRONG)
        account.failed_logins = 0
        account.locked_until = None
        account.last_login_at = now
        if new_hash is not None:
            account.password_hash = new_hash
        return SignInResult(SignIn.OK, account.id, account.session_epoch or 0)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
