"""Turning a page template into a response: Jinja2 with autoescape on, the catalog, filters."""

from __future__ import annotations

from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any

import jinja2

from intents.i18n import Catalog

TEMPLATES = Path(__file__).with_name("templates")

# Every page can show personal data: browsers must not cache it, frame it or send it on.
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def build_environment(tz: tzinfo) -> jinja2.Environment:
    # autoescape=True for every template (not by file extension), and StrictUndefined so a
    # misspelt variable fails in tests instead of printing nothing to staff.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def local(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return value.astimezone(tz).strftime(fmt) if value is not None else ""

    env.filters["local"] = local
    return env


class Translator:
    """`t("key")` in templates: the console's catalog in the staff member's language."""

    def __init__(self, catalog: Catalog, lang: str) -> None:
        self.catalog = catalog
        self.lang = lang

    def __call__(self, key: str, **values: Any) -> str:
        return self.catalog.text(key, self.lang, **values)
