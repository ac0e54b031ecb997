"""The bot's sentences in Japanese and English, loaded from messages.toml."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DEFAULT_MESSAGES = Path(__file__).with_name("messages.toml")


class Catalog:
    """Looks up a sentence by key and language; a missing English text falls back to Japanese,
    and a missing key is a start-up error rather than a blank reply to a person."""

    def __init__(self, texts: Mapping[str, Mapping[str, str]]) -> None:
        self._texts = texts

    @classmethod
    def load(cls, path: Path = DEFAULT_MESSAGES) -> Catalog:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        texts: dict[str, dict[str, str]] = {}

        def walk(prefix: str, node: Mapping[str, Any]) -> None:
            if "ja" in node and isinstance(node["ja"], str):
                texts[prefix] = {k: v for k, v in node.items() if isinstance(v, str)}
                return
            for key, value in node.items():
                if isinstance(value, Mapping):
                    walk(f"{prefix}.{key}" if prefix else key, value)

        walk("", raw)
        return cls(texts)

    def __contains__(self, key: str) -> bool:
        return key in self._texts

    def text(self, key: str, lang: str, **values: object) -> str:
        try:
            forms = self._texts[key]
        except KeyError:
            raise KeyError(f"message {key!r} is missing from messages.toml") from None
        template = forms.get(lang) or forms["ja"]
        return template.format(**values) if values else template
