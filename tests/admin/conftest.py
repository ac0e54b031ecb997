"""The console through the real app (lifespan, middleware, database): a TestClient per test,
staff accounts made in the app's own database, and helpers to sign in and post forms."""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.testclient import TestClient

from bot.admin.accounts import create_staff
from bot.config import Settings
from bot.runtime import Runtime
from bot.web import create_app
from tests.conftest import Clock

T = TypeVar("T")
PASSWORD = "correct horse battery staple"
ADMIN = "admin@city.example.jp"
STAFF = "staff@city.example.jp"
HTTPS = "https://testserver"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def app_kwargs(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Share the test run's FAQ library when the app takes one (loading it takes seconds)."""
    if "library" in inspect.signature(create_app).parameters:
        return {"library": request.getfixturevalue("faq_library")}
    return {}


class Console:
    """A browser-like session on the console: keeps cookies, reads CSRF tokens from pages."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.client.app.state.runtime  # type: ignore[attr-defined]
        return runtime

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the app's own event loop (its database engine lives there)."""
        portal = self.client.portal
        assert portal is not None
        return portal.call(fn)

    def db(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """`fn(session)` in one committed transaction on the app's database."""

        async def go() -> T:
            async with self.runtime.sessions() as session, session.begin():
                return await fn(session)

        return self.run(go)

    def add_staff(self, email: str, role: str = "staff", password: str = PASSWORD) -> int:
        async def make() -> int:
            async with self.runtime.sessions() as session, session.begin():
                account = await create_staff(session, email, password, role, self.runtime.clock())
                return account.id

        return self.run(make)

    def csrf(self, path: str = "/admin/login") -> str:
        page = self.client.get(path)
        found = _CSRF.search(page.text)
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def login(self, email: str, password: str = PASSWORD, *, follow: bool = False) -> Any:
        token = self.csrf("/admin/login")
        return self.client.post(
            "/admin/login",
            data={"email": email, "password": password, "csrf_token": token, "next": "/admin/"},
            follow_redirects=follow,
        )

    def post(self, path: str, data: dict[str, Any] | None = None, *, page: str = "/admin/",
             follow: bool = False) -> Any:  # fmt: skip
        token = self.csrf(page)
        return self.client.post(
            path, data={**(data or {}), "csrf_token": token}, follow_redirects=follow
        )


@pytest.fixture
def console(settings: Settings, clock: Clock, request: pytest.FixtureRequest) -> Iterator[Console]:
    app = create_app(settings, clock=clock, migrate_schema=True, **app_kwargs(request))
    # https, as in production: the session cookie is Secure, so a client over http drops it.
    with TestClient(
        app, base_url=HTTPS, raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield Console(client)


@pytest.fixture
def admin(console: Console) -> Console:
    console.add_staff(ADMIN, "admin")
    assert console.login(ADMIN).status_code == 303
    return console


@pytest.fixture
def staff(console: Console) -> Console:
    console.add_staff(STAFF, "staff")
    assert console.login(STAFF).status_code == 303
    return console


class RecordingPusher:
    """Stands in for a platform in the outbox worker: records what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[Any]]] = []

    async def push(self, address: str, replies: Any, *, retry_key: str) -> None:
        self.sent.append((address, list(replies)))

    async def multicast(self, recipients: Any, replies: Any, *, retry_key: str) -> None:
        for address in recipients:
            self.sent.append((address, list(replies)))

    def texts_for(self, address: str) -> list[str]:
        return [r.text for to, replies in self.sent if to == address for r in replies]
