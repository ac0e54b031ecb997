"""The only reader of config.toml and of the environment; validates both at start-up."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

Language = Literal["ja", "en"]
LANGUAGES: tuple[Language, ...] = ("ja", "en")
Audience = Literal["resident", "company"]


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


class ChannelAudiences(_Section):
    """Who a person first seen on each channel is taken to be (announcement segments; the
    sign-up form's company or individual tours): the sample city invites residents on LINE and
    companies on Telegram, but another city may run it the other way round."""

    line: Audience = "resident"
    telegram: Audience = "company"
    web: Audience = "resident"
    console: Audience = "resident"

    def of(self, channel: str) -> Audience:
        """The channel's audience; a channel with no setting (tests' fakes) is residents'."""
        if channel not in type(self).model_fields:  # not getattr alone: "of" is an attribute
            return "resident"
        audience: Audience = getattr(self, channel)
        return audience


class BotSettings(_Section):
    default_language: Language = "ja"
    timezone: str = "Asia/Tokyo"
    audience: ChannelAudiences = ChannelAudiences()

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
    # Sentence-embedding models: auto (every model package installed), off, use, e5, e5+use.
    dense: Literal["auto", "off", "use", "e5", "e5+use"] = "auto"
    # Entry embeddings and analyses are kept here, so a restart does not recompute them.
    cache_dir: Path = Path("var/faq-cache")
    synonyms: Path = Path("faq/lexicon/synonyms.toml")
    # Probabilities (0..1) that the best entry is right: at or above answer_threshold the
    # bot answers, at or above suggest_threshold it offers choices. Unset: the calibrated
    # values of the loaded models (faq/retrieval/confidence.py).
    answer_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    suggest_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    suggestions: int = Field(default=3, ge=1, le=5)


class ReminderSettings(_Section):
    # Days before the tour's first day; each reminder goes out at `at` local time.
    days_before: list[int] = Field(default_factory=lambda: [7, 1])
    at: time = time(10, 0)
    # No message is sent between quiet_from and quiet_until (local time); a late reminder
    # waits for the morning.
    quiet_from: time = time(21, 0)
    quiet_until: time = time(8, 0)

    @field_validator("days_before")
    @classmethod
    def _positive_days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 60 for d in value):
            raise ValueError("whole numbers of days between 0 and 60, such as [7, 1]")
        return sorted(set(value), reverse=True)


class SignupSettings(_Section):
    privacy_notice: Localized
    # A half-filled form untouched for this long asks "continue or start over?".
    resume_after_hours: int = Field(default=24, ge=1, le=24 * 30)


class StaffSettings(_Section):
    # Telegram chat that receives sign-up, cancellation and handoff notices; empty = log only.
    telegram_chat_id: str = ""
    # A conversation handed to staff returns to the bot after this long without messages.
    handoff_idle_minutes: int = Field(default=120, ge=5, le=7 * 24 * 60)
    # Unanswered questions kept for staff per person per hour: one person repeating themselves
    # (or a script) must not bury everyone else's questions in the console's list.
    unanswered_per_person_per_hour: int = Field(default=5, ge=1, le=1000)


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)


class WebChatSettings(_Section):
    # Messages the web chat takes per minute from one visitor (their cookie) and from one
    # client address (every visitor behind it: an office, a library), each with a burst on
    # top; beyond them a 429 and a polite line in the page. Counted per web process.
    visitor_per_minute: int = Field(default=20, ge=1, le=10_000)
    visitor_burst: int = Field(default=20, ge=1, le=10_000)
    address_per_minute: int = Field(default=120, ge=1, le=100_000)
    address_burst: int = Field(default=60, ge=1, le=100_000)


class PrivacySettings(_Section):
    # Conversation messages older than this are deleted by the worker.
    message_log_days: int = Field(default=90, ge=1, le=3650)


class ConsoleSettings(_Section):
    # The session cookie is `Secure` (sent over HTTPS only) unless the operator says the
    # console is served over plain HTTP on this machine's loopback (`make run` sets it through
    # CONSOLE_PLAIN_HTTP_ON_LOOPBACK=1). web.host does not decide it: behind a proxy on the
    # same machine the web process listens on 127.0.0.1 while staff reach it over HTTPS.
    plain_http_on_loopback: bool = False
    # Failed passwords in a row before an account is locked, and for how long.
    max_failed_logins: int = Field(default=5, ge=1, le=100)
    lockout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # Sign-in attempts one client address may make within the window (per web process), then
    # 429 until the window moves on: room for an office behind one address, none for a flood.
    logins_per_address: int = Field(default=30, ge=1, le=10_000)
    login_window_minutes: int = Field(default=10, ge=1, le=24 * 60)
    session_hours: int = Field(default=8, ge=1, le=24 * 30)


class RichMenuArea(_Section):
    """One cell of the LINE rich menu: what it shows and the postback the engine gets."""

    label: Localized
    # A postback the intents understand (topic:housing, menu, lang, help, ...).
    postback: str = Field(min_length=1, max_length=300)


def _default_rich_menu_areas() -> list[RichMenuArea]:
    cells = [
        ("住まい", "Housing", "topic:housing"),
        ("子育て", "Childcare", "topic:childcare"),
        ("仕事場", "Workspaces", "topic:telework"),
        ("ツアー申込", "Tour sign-up", "signup:start"),
        ("予約確認", "My bookings", "booking:list"),
        ("言語 / Language", "Language", "lang"),
    ]
    return [RichMenuArea(label=Localized(ja=j, en=e), postback=p) for j, e, p in cells]


class RichMenuSettings(_Section):
    name: str = Field(default="iju-bot main menu", min_length=1, max_length=300)
    # The label of the bar that opens the menu (LINE allows at most 14 characters).
    chat_bar: str = Field(default="メニュー / Menu", min_length=1, max_length=14)
    # Drawn as a grid of 3 columns; LINE allows at most 20 areas.
    areas: list[RichMenuArea] = Field(
        default_factory=_default_rich_menu_areas, min_length=1, max_length=12
    )


class LineSettings(_Section):
    # LINE_API_BASE_URL in the environment points the SDK at a local fake for tests and
    # benchmarks; image uploads go to api-data.line.me unless this is changed.
    api_base_url: str = "https://api.line.me"
    rich_menu: RichMenuSettings = RichMenuSettings()

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s):// URL such as https://api.line.me")
        return value.rstrip("/")


class TelegramCommand(_Section):
    command: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    description: Localized


def _default_telegram_commands() -> list[TelegramCommand]:
    rows = [
        ("start", "はじめる（話題の一覧）", "Start (list of topics)"),
        ("help", "使い方", "How to use this bot"),
        ("lang", "言語を切り替える", "Change language"),
        ("cancel", "入力中の内容を取り消す", "Cancel what you are entering"),
    ]
    return [TelegramCommand(command=c, description=Localized(ja=j, en=e)) for c, j, e in rows]


class TelegramSettings(_Section):
    # TELEGRAM_API_BASE_URL: python-telegram-bot's base_url; the token is appended to it.
    api_base_url: str = "https://api.telegram.org/bot"
    commands: list[TelegramCommand] = Field(
        default_factory=_default_telegram_commands, min_length=1, max_length=100
    )

    @field_validator("api_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("an http(s):// URL such as https://api.telegram.org/bot")
        return value


class Secrets(_Section):
    """Tokens from the environment only. SecretStr keeps them out of reprs and logs."""

    line_channel_secret: SecretStr | None = None
    line_channel_access_token: SecretStr | None = None
    telegram_bot_token: SecretStr | None = None
    telegram_webhook_secret: SecretStr | None = None
    console_secret_key: SecretStr | None = None


class Settings(_Section):
    city: CitySettings
    bot: BotSettings = BotSettings()
    database: DatabaseSettings = DatabaseSettings()
    faq: FaqSettings = FaqSettings()
    web: WebSettings = WebSettings()
    webchat: WebChatSettings = WebChatSettings()
    signup: SignupSettings
    reminders: ReminderSettings = ReminderSettings()
    staff: StaffSettings = StaffSettings()
    privacy: PrivacySettings = PrivacySettings()
    console: ConsoleSettings = ConsoleSettings()
    line: LineSettings = LineSettings()
    telegram: TelegramSettings = TelegramSettings()
    secrets: Secrets = Secrets()
    # Directory that relative paths in the file are resolved against.
    root: Path = Path(".")

    @property
    def faq_dir(self) -> Path:
        return self.path(self.faq.directory)

    def path(self, value: Path) -> Path:
        """A path from the file, relative to the file's own directory."""
        return value if value.is_absolute() else self.root / value


_ENV_SECRETS = {
    "LINE_CHANNEL_SECRET": "line_channel_secret",
    "LINE_CHANNEL_ACCESS_TOKEN": "line_channel_access_token",
    "TELEGRAM_BOT_TOKEN": "telegram_bot_token",
    "TELEGRAM_WEBHOOK_SECRET": "telegram_webhook_secret",
    "CONSOLE_SECRET_KEY": "console_secret_key",
}


# Non-secret settings the environment may override (local fakes in tests and benchmarks, and
# `make run`'s plain-HTTP console on loopback).
_ENV_SETTINGS = {
    "LINE_API_BASE_URL": ("line", "api_base_url"),
    "TELEGRAM_API_BASE_URL": ("telegram", "api_base_url"),
    "CONSOLE_PLAIN_HTTP_ON_LOOPBACK": ("console", "plain_http_on_loopback"),
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
    for name, (section, key) in _ENV_SETTINGS.items():
        if env.get(name):
            raw.setdefault(section, {})[key] = env[name]
            from_env[f"{section}.{key}"] = name
    raw["secrets"] = {key: env[name] for name, key in _ENV_SECRETS.items() if env.get(name)}
    raw["root"] = path.parent.resolve()
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e, from_env) for e in exc.errors())
        raise ConfigError(f"{path}: invalid configuration\n  {problems}") from None
    answer, suggest = settings.faq.answer_threshold, settings.faq.suggest_threshold
    if answer is not None and suggest is not None and suggest > answer:
        raise ConfigError(
            f"{path}: faq.suggest_threshold: expected a value not above "
            f"faq.answer_threshold ({settings.faq.answer_threshold})"
        )
    return settings
