"""Staff accounts: argon2 password hashes, sign-in with lock-out, creation from the CLI."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.storage.models import StaffAccount

ROLES = ("staff", "admin")
MIN_PASSWORD = 12
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

# argon2-cffi's defaults follow RFC 9106's second recommended profile (64 MiB, t=3).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the e-mail is unknown, so a wrong address takes as long as a
    wrong password and the response time does not tell which addresses have accounts."""
    return _hasher.hash("not a real password: timing equaliser")


class AccountError(ValueError):
    """Input that cannot become an account (message key for the console catalog)."""


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError("staff.password_short")


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 254:
        raise AccountError("staff.email_invalid")
    return email


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
        email=email, password_hash=hash_password(password), role=role, active=True, created_at=now
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
    account: StaffAccount | None = None


async def sign_in(
    session: AsyncSession, email: str, password: str, now: datetime, policy: LockoutPolicy
) -> SignInResult:
    """Check a password. After `max_failures` wrong ones in a row the account is locked for
    `lock_for`, even against the right password, so guessing is slowed to a crawl."""
    try:
        address = normalise_email(email)
    except AccountError:
        address = ""
    account = await session.scalar(
        select(StaffAccount).where(StaffAccount.email == address).with_for_update()
    )
    if account is None or not account.active:
        _verify(_dummy_hash(), password)
        return SignInResult(SignIn.WRONG)
    if account.locked_until is not None and account.locked_until > now:
        return SignInResult(SignIn.LOCKED)
    if not _verify(account.password_hash, password):
        account.failed_logins = (account.failed_logins or 0) + 1
        if account.failed_logins >= policy.max_failures:
            account.locked_until = now + policy.lock_for
            account.failed_logins = 0
            return SignInResult(SignIn.LOCKED)
        return SignInResult(SignIn.WRONG)
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = now
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
    return SignInResult(SignIn.OK, account)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
