"""`python -m bot line ...` / `telegram ...` against the fake platform, in process."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from bot.__main__ import main
from bot.channels.fake import FakeChannel
from bot.cli_platforms import draw_rich_menu, find_cjk_font
from bot.config import load_settings
from bot.runtime import Runtime
from tests.channels.conftest import LINE_SECRET, TG_SECRET, TG_TOKEN
from tests.conftest import ROOT
from tests.fakes.platform import FakePlatform
from tests.fakes.spec import line_path_exists, line_request_schema, openapi_errors, telegram_errors

CONFIG = str(ROOT / "config.toml")


@pytest.fixture
def platform_env(monkeypatch: pytest.MonkeyPatch, fake: FakePlatform) -> FakePlatform:
    monkeypatch.setenv("LINE_CHANNEL_SECRET", LINE_SECRET)
    monkeypatch.setenv("LINE_CHANNEL_ACCESS_TOKEN", "line-test-access-token")
    monkeypatch.setenv("LINE_API_BASE_URL", fake.url)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TG_TOKEN)
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", TG_SECRET)
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", f"{fake.url}/bot")
    return fake


def test_rich_menu_is_drawn_uploaded_and_made_default(
    platform_env: FakePlatform, tmp_path: Path
) -> None:
    fake = platform_env
    image_path = tmp_path / "menu.png"
    assert main(["--config", CONFIG, "line", "rich-menu", "--image", str(image_path)]) == 0
    create, upload, default = fake.requests
    assert (create.method, create.path) == ("POST", "/v2/bot/richmenu")
    assert openapi_errors("messaging-api.yml", line_request_schema(create.path), create.body) == []
    areas = create.body["areas"]
    assert [a["action"]["data"] for a in areas][:3] == ["topic:housing", "topic:childcare",
                                                       "topic:telework"]  # fmt: skip
    assert all(len(a["action"]["label"]) <= 20 for a in areas)
    assert upload.path == "/v2/bot/richmenu/richmenu-0123456789abcdef/content"
    assert line_path_exists("/v2/bot/richmenu/{richMenuId}/content", "post")
    assert upload.headers["content-type"] == "image/png"
    png = Image.open(io.BytesIO(upload.body))
    assert png.size == (2500, 1686) and len(upload.body) < 1024 * 1024
    assert image_path.read_bytes() == upload.body
    assert (default.method, default.path) == (
        "POST",
        "/v2/bot/user/all/richmenu/richmenu-0123456789abcdef",
    )
    assert upload.headers["authorization"] == "Bearer line-test-access-token"


def test_rich_menu_without_a_japanese_font_falls_back_clearly(
    monkeypatch: pytest.MonkeyPatch, platform_env: FakePlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("bot.cli_platforms.find_cjk_font", lambda explicit=None: None)
    assert main(["--config", CONFIG, "line", "rich-menu", "--dry-run"]) == 0
    assert "no Japanese font found" in capsys.readouterr().err
    assert platform_env.requests == []


def test_rich_menu_font_draws_japanese() -> None:
    font = find_cjk_font()
    if font is None:
        pytest.skip("no Japanese font on this machine (.ci/run installs fonts-noto-cjk)")
    menu = load_settings(ROOT / "config.toml", environ={}).line.rich_menu
    with_font, without = draw_rich_menu(menu, font), draw_rich_menu(menu, None)
    assert with_font != without  # the Japanese labels really were drawn


async def test_every_rich_menu_area_is_understood_by_the_engine(runtime: Runtime) -> None:
    menu = runtime.settings.line.rich_menu
    dont_know = runtime.engine.services.catalog.text("dont_know", "ja", contact="")
    for area in menu.areas:
        person = FakeChannel(runtime.engine, user_id=f"menu-{area.postback}", channel="line")
        replies = await person.press(area.postback)
        assert replies and not replies[0].text.startswith(dont_know.split("\n")[0]), area


def test_line_webhook_commands(
    platform_env: FakePlatform, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "https://bot.example.jp/webhooks/line"
    assert main(["--config", CONFIG, "line", "set-webhook", url]) == 0
    assert main(["--config", CONFIG, "line", "webhook-info"]) == 0
    put, get = platform_env.requests
    assert (put.method, put.path, put.body) == (
        "PUT",
        "/v2/bot/channel/webhook/endpoint",
        {"endpoint": url},
    )
    assert openapi_errors("messaging-api.yml", line_request_schema(put.path, "put"), put.body) == []
    assert get.method == "GET"
    assert "active:   True" in capsys.readouterr().out


def test_telegram_set_webhook_and_commands(platform_env: FakePlatform) -> None:
    url = "https://bot.example.jp/webhooks/telegram"
    assert main(["--config", CONFIG, "telegram", "set-webhook", url]) == 0
    [hook] = platform_env.telegram("setWebhook")
    assert hook.body["url"] == url and hook.body["secret_token"] == TG_SECRET
    assert "callback_query" in json.loads(hook.body["allowed_updates"])
    commands = platform_env.telegram("setMyCommands")
    assert [c.body.get("language_code") for c in commands] == ["ja", "en", None]
    ja = json.loads(commands[0].body["commands"])
    assert {c["command"] for c in ja} == {"start", "help", "lang", "cancel"}
    assert ja[1]["description"] == "使い方"
    for rec in platform_env.telegram("setWebhook") + commands:
        assert telegram_errors(rec.tg_method, rec.body) == []
    assert main(["--config", CONFIG, "telegram", "webhook-info"]) == 0


def test_missing_secret_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    assert main(["--config", CONFIG, "telegram", "set-commands"]) == 2
    assert "TELEGRAM_BOT_TOKEN" in capsys.readouterr().err
