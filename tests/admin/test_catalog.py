"""Every console word the templates and pages ask for exists in Japanese and English."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from bot.admin.i18n import CONSOLE_MESSAGES, console_catalog

ADMIN = Path(__file__).resolve().parents[2] / "bot" / "admin"
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_]+(?:\.[a-z_]+)+)["']""")


def _leaves(node: dict[str, object], prefix: str = "") -> dict[str, dict[str, str]]:
    if "ja" in node and isinstance(node["ja"], str):
        return {prefix: {k: v for k, v in node.items() if isinstance(v, str)}}
    found: dict[str, dict[str, str]] = {}
    for key, value in node.items():
        if isinstance(value, dict):
            found |= _leaves(value, f"{prefix}.{key}" if prefix else key)
    return found


def test_every_literal_key_exists() -> None:
    catalog = console_catalog()
    sources = [*ADMIN.glob("templates/*.html"), *ADMIN.glob("pages/*.py")]
    used = {key for path in sources for key in LITERAL_KEY.findall(path.read_text("utf-8"))}
    assert len(used) > 50
    missing = sorted(key for key in used if key not in catalog)
    assert not missing


def test_every_entry_has_japanese_and_english() -> None:
    leaves = _leaves(tomllib.loads(CONSOLE_MESSAGES.read_text("utf-8")))
    incomplete = sorted(
        k for k, forms in leaves.items() if not forms.get("ja") or not forms.get("en")
    )
    assert not incomplete
