"""The console's own words (ja first, en available), kept apart from what the bot says."""

from __future__ import annotations

import functools
from pathlib import Path

from intents.i18n import Catalog

CONSOLE_MESSAGES = Path(__file__).with_name("messages.toml")
UI_LANGUAGES = ("ja", "en")


@functools.cache
def console_catalog() -> Catalog:
    # Read once per process on first use (never at import); the file ships with the code.
    return Catalog.load(CONSOLE_MESSAGES)
