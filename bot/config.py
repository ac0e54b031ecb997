"""The only reader of config.toml and of the environment; validates both at start-up."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")


class ConfigError(Exception):
    """A configuration problem, worded for the operator: file, key, what was expected."""


class _Section(BaseModel):
    # Unknown keys are refused so that a typo ("answer_treshold") is reported, not ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Localized(_Section):
    ja: str = Field(min_length=1)
    en: str = Field(min_length=1)

    def get(self, lang: str) -> str:
        return self.en if lang == "en" else self.ja


class CitySettings(_Section):
    name: Localized
    prefecture: Localized
    contact: Localized


class BotSettings(_Section):
    default_language: Language = "ja"
    timezone: str = "Asia/Tokyo"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"an IANA time zone such as 'Asia/Tokyo', not {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///var/iju-bot.sqlite3"

    @field_validator("url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if value.startswith(("postgres://", "postgresql://")):
            # Hosting platforms hand out plain postgres:// URLs; we talk asyncpg.
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "a database URL starting with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class FaqSettings(_Section):
    directory: Path = Path("faq")
    answer_threshold: float = Field(default=0.80, ge=0.0, le=1.0)
    suggest_threshold: float = Field(default=0.55, ge=0.0, le=1.0)
    suggestions: int = Field(default=3, ge=1, le=5)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class Secrets(_Section):
    """Tokens from the environment only. SecretStr keeps them out of reprs and logs."""

    line_channel_secret: SecretStr | None = None
    line_channel_access_token: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None


class Settings(_Section):
    city: CitySettings
    bot: BotSettings = BotSettings()
    database: DatabaseSettings = DatabaseSettings()
    faq: FaqSettings = FaqSettings()
    web: WebSettings = WebSettings()
    secrets: Secrets = Secrets()
    # Directory that relative paths in the file are resolved against.
    root: Path = Path(".")

    @property
    def faq_dir(self) -> Path:
        d = self.faq.directory
        return d if d.is_absolute() else self.root / d


_ENV_SECRETS = {
    "LINE_CHANNEL_SECRET": "line_channel_secret",
    "LINE_CHANNEL_ACCESS_TOKEN": "line_channel_access_token",
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_WEBHOOK_SECRET": "telegram_webhook_secret",
}


def _describe(error: Mapping[str, Any], from_env: Mapping[str, str]) -> str:
    key = ".".join(str(p) for p in error["loc"])
    if key in from_env:
        key = f"{key} (from the environment variable {from_env[key]})"
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{key}: unknown key (check its spelling)"
    if kind == "missing":
        return f"{key}: missing, it is required"
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    return f"{key}: expected {error['msg'].removeprefix('Value error, ')}{shown}"


def load_settings(
    path: Path | str = "config.toml", environ: Mapping[str, str] | None = None
) -> Settings:
    """Read and validate config.toml plus the environment; raise ConfigError naming the key."""
    path = Path(path)
    env = os.environ if environ is None else environ
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc

    from_env: dict[str, str] = {}
    if env.get("DATABASE_URL"):
        raw.setdefault("database", {})["url"] = env["DATABASE_URL"]
        from_env["database.url"] = "DATABASE_URL"
    raw["secrets"] = {key: env[name] for name, key in _ENV_SECRETS.items() if env.get(name)}
    raw["root"] = path.parent.resolve()
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e, from_env) for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration\n  {problems}") from None
    if settings.faq.suggest_threshold > settings.faq.answer_threshold:
        raise ConfigError(
            f"{path}: faq.suggest_threshold: expected a value not above "
            f"faq.answer_threshold ({settings.faq.answer_threshold})"
        )
    return settings
