"""Who is asking and in which language: the per-request context every console page gets."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import jinja2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from bot.admin import csrf
from bot.admin.accounts import LockoutPolicy
from bot.admin.i18n import UI_LANGUAGES
from bot.admin.login_limit import AddressLimit
from bot.admin.render import SECURITY_HEADERS, Translator
from bot.runtime import Runtime
from intents.i18n import Catalog


class NotFound(Exception):
    """An id in the URL that names nothing: a 404 page, not a 500."""


# Row ids are PostgreSQL integers: a larger number in a URL names nothing (and would make the
# database refuse the query, a 500, instead of a 404).
MAX_ROW_ID = 2**31 - 1


def _storable(value: str) -> str:
    # PostgreSQL refuses NUL in text (a 500 from any form or filter that carried one); no
    # one types it, so it is dropped rather than refused.
    return value.replace("\x00", "").strip()


@dataclass(frozen=True)
class Console:
    """What every page needs, built once by build_console (no module-level state)."""

    runtime: Callable[[], Runtime]
    env: jinja2.Environment
    catalog: Catalog
    lockout: LockoutPolicy
    session_for: timedelta
    per_address: AddressLimit
    prefix: str = "/admin"

    def url(self, path: str = "/") -> str:
        return self.prefix + path


@dataclass(frozen=True)
class Staff:
    id: int
    email: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def language(request: Request) -> str:
    lang = request.session.get("lang")
    return lang if lang in UI_LANGUAGES else "ja"


@dataclass
class Ctx:
    """One request by one signed-in staff member (or the login page, with staff None)."""

    console: Console
    request: Request
    staff: Staff | None
    form: FormData | None = None
    lang: str = "ja"
    extra: dict[str, Any] = field(default_factory=dict)

    # --- shortcuts ----------------------------------------------------------------------
    @property
    def runtime(self) -> Runtime:
        return self.console.runtime()

    @property
    def sessions(self) -> async_sessionmaker[AsyncSession]:
        return self.runtime.sessions

    def now(self) -> datetime:
        return self.runtime.clock()

    @property
    def me(self) -> Staff:
        assert self.staff is not None, "a guarded page always has a staff member"
        return self.staff

    def t(self, key: str, **values: Any) -> str:
        return self.console.catalog.text(key, self.lang, **values)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        return _storable(value) if isinstance(value, str) else default

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        values = (_storable(v) for v in self.form.getlist(name) if isinstance(v, str))
        return [v for v in values if v]

    def query(self, name: str, default: str = "") -> str:
        """A filter from the URL's query string, as `field` reads a form's."""
        value = self.request.query_params.get(name)
        return default if value is None else _storable(value)

    def path_id(self, name: str) -> int:
        """A row id from the URL; NotFound (a 404) when no row can have it."""
        value = int(self.request.path_params[name])
        if not 0 < value <= MAX_ROW_ID:
            raise NotFound
        return value

    # --- responses ----------------------------------------------------------------------
    def flash(self, text: str, kind: str = "ok") -> None:
        self.request.session.setdefault("flash", []).append([kind, text])

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        flashes = self.request.session.pop("flash", [])
        page = self.console.env.get_template(template).render(
            t=Translator(self.console.catalog, self.lang),
            lang=self.lang,
            staff=self.staff,
            csrf_token=csrf.token(self.request.session),
            csrf_field=csrf.FIELD,
            base=self.console.prefix,
            here=self.request.url.path,
            flashes=flashes,
            **values,
        )
        return HTMLResponse(page, status_code=status, headers=SECURITY_HEADERS)

    def redirect(self, path: str) -> RedirectResponse:
        # 303: the browser follows a POST with a GET, so a reload does not resubmit a form.
        return RedirectResponse(self.console.url(path), status_code=303)

    def not_found(self) -> HTMLResponse:
        return self.render("message.html", status=404, title=self.t("error.not_found"))

    def forbidden(self, data: bool = False) -> Response:
        if data:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        return self.render("message.html", status=403, title=self.t("error.forbidden"))


def login_redirect(console: Console, request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        console.url("/login") + "?next=" + quote(target, safe=""), status_code=303
    )


def safe_next(console: Console, value: str | None) -> str:
    """Only a path inside the console: `next=https://evil.example` must not redirect away."""
    if (
        value
        and value.startswith(console.prefix + "/")
        and not value.startswith("//")
        and "\\" not in value
        and "://" not in value
    ):
        return value
    return console.url("/")
