"""config.toml validation: every mistake is named by file and key; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, extra: str) -> Path:
    base = (ROOT / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(base + "\n" + extra, encoding="utf-8")
    return path


def test_shipped_config_loads_with_sqlite_default() -> None:
    settings = load_settings(ROOT / "config.toml", environ={})
    assert settings.database.is_sqlite
    assert settings.bot.timezone == "Asia/Tokyo"
    assert settings.city.name.ja == "小諸市"


def test_wrong_value_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    broken = text.replace("# answer_threshold = 0.", "answer_threshold = 7")
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    message = str(err.value)
    assert str(path) in message and "faq.answer_threshold" in message


def test_unknown_key_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"web\.colour: unknown key"):
        load_settings(write(tmp_path, "[web.colour]\nx = 1"), environ={})


def test_bad_timezone_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('"Asia/Tokyo"', '"Mars/Olympus"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bot\.timezone: expected an IANA time zone"):
        load_settings(path, environ={})


def test_bad_database_url_from_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL"):
        load_settings(ROOT / "config.toml", environ={"DATABASE_URL": "mysql://x"})


def test_postgres_url_gets_async_driver() -> None:
    settings = load_settings(ROOT / "config.toml", environ={"DATABASE_URL": "postgres://u@h/db"})
    assert settings.database.url == "postgresql+asyncpg://u@h/db"


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[city\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, environ={})


def test_secrets_come_from_environment_and_never_print() -> None:
    settings = load_settings(
        ROOT / "config.toml", environ={"LINE_CHANNEL_ACCESS_TOKEN": "tok-SECRET-123"}
    )
    token = settings.secrets.line_channel_access_token
    assert token is not None and token.get_secret_value() == "tok-SECRET-123"
    assert "tok-SECRET-123" not in repr(settings) and "tok-SECRET-123" not in str(settings)


def test_channel_audience_typo_and_bad_value_are_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('telegram = "company"', 'telegam = "company"'), "utf-8")
    with pytest.raises(ConfigError, match=r"bot\.audience\.telegam: unknown key"):
        load_settings(path, environ={})
    path.write_text(text.replace('telegram = "company"', 'telegram = "companies"'), "utf-8")
    with pytest.raises(ConfigError, match=r"bot\.audience\.telegram: expected .*'resident'"):
        load_settings(path, environ={})
