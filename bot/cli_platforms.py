"""Operator commands for LINE and Telegram: webhooks, the rich menu and the command menu."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import math
import shutil
import subprocess
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from bot.config import ConfigError, RichMenuArea, RichMenuSettings, Settings, load_settings

log = logging.getLogger(__name__)

# LINE's full-size rich menu; a single row of areas uses the half-height one.
MENU_WIDTH, MENU_FULL_HEIGHT, MENU_HALF_HEIGHT = 2500, 1686, 843
COLUMNS = 3
MAX_IMAGE_BYTES = 1024 * 1024  # LINE refuses larger rich-menu images
# Where Debian's fonts-noto-cjk puts its fonts; fc-match is asked when these are absent.
CJK_FONTS = (
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"),
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),
)
TELEGRAM_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]


# --- rich menu image ------------------------------------------------------------------------
def find_cjk_font(explicit: str | None = None) -> Path | None:
    """A font file that has Japanese glyphs, or None."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"--font {explicit}: no such font file")
        return path
    for path in CJK_FONTS:
        if path.is_file():
            return path
    if shutil.which("fc-match"):
        found = subprocess.run(
            ["fc-match", "-f", "%{file}", ":lang=ja"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
        # fc-match always answers something; only trust it if fc-list agrees it covers ja.
        listed = subprocess.run(
            ["fc-list", ":lang=ja", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        if found and found in listed and Path(found).is_file():
            return Path(found)
    return None


def area_bounds(count: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    """Menu height and (x, y, width, height) of each area on a grid of COLUMNS."""
    rows = math.ceil(count / COLUMNS)
    height = MENU_HALF_HEIGHT if rows == 1 else MENU_FULL_HEIGHT
    cell_w, cell_h = MENU_WIDTH // COLUMNS, height // rows
    bounds = []
    for i in range(count):
        row, col = divmod(i, COLUMNS)
        # The last column/row takes the rounding remainder so the grid covers the image.
        w = MENU_WIDTH - col * cell_w if col == COLUMNS - 1 or i == count - 1 else cell_w
        h = height - row * cell_h if row == rows - 1 else cell_h
        bounds.append((col * cell_w, row * cell_h, w, h))
    return height, bounds


def draw_rich_menu(menu: RichMenuSettings, font_path: Path | None) -> bytes:
    """The menu image as PNG: Japanese label large, English below. Without a CJK font only
    the English labels are drawn (Pillow's own font has no Japanese glyphs)."""
    from PIL import Image, ImageDraw, ImageFont

    height, bounds = area_bounds(len(menu.areas))
    image = Image.new("RGB", (MENU_WIDTH, height), "#f4f1ea")
    draw = ImageDraw.Draw(image)

    def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
        if font_path is not None:
            return ImageFont.truetype(str(font_path), size)
        return ImageFont.load_default(size=size)

    big, small = font(120), font(64)
    palette = ("#2f6f4f", "#3b6ea5", "#b5651d", "#7a4e9c", "#4b7f8c", "#8c6d1f")
    for n, (area, (x, y, w, h)) in enumerate(zip(menu.areas, bounds, strict=True)):
        draw.rectangle((x + 12, y + 12, x + w - 12, y + h - 12), fill=palette[n % len(palette)])
        cx, cy = x + w / 2, y + h / 2
        if font_path is not None:
            draw.text((cx, cy - 40), area.label.ja, font=big, fill="white", anchor="mm")
            draw.text((cx, cy + 90), area.label.en, font=small, fill="#f0f0f0", anchor="mm")
        else:
            draw.text((cx, cy), area.label.en, font=big, fill="white", anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def rich_menu_request(menu: RichMenuSettings) -> dict[str, Any]:
    """The Messaging API's RichMenuRequest for the configured areas (postback actions)."""
    height, bounds = area_bounds(len(menu.areas))
    return {
        "size": {"width": MENU_WIDTH, "height": height},
        "selected": True,
        "name": menu.name,
        "chatBarText": menu.chat_bar,
        "areas": [_area(area, b) for area, b in zip(menu.areas, bounds, strict=True)],
    }


def _area(area: RichMenuArea, bounds: tuple[int, int, int, int]) -> dict[str, Any]:
    x, y, w, h = bounds
    label = area.label.ja[:20]
    return {
        "bounds": {"x": x, "y": y, "width": w, "height": h},
        "action": {"type": "postback", "label": label, "data": area.postback, "displayText": label},
    }


# --- commands -------------------------------------------------------------------------------
def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _need(value: Any, name: str) -> str:
    if value is None:
        raise ConfigError(f"{name} is not set in the environment")
    secret: str = value.get_secret_value()
    return secret


def _run(job: Callable[[], Coroutine[Any, Any, int]]) -> int:
    try:
        return asyncio.run(job())
    except ConfigError:
        raise
    except Exception as exc:  # an API refusal: say which, without a stack trace or a token
        detail = getattr(exc, "status", "") or getattr(exc, "message", "")
        print(f"error: the platform refused the request ({type(exc).__name__}: {detail})",
              file=sys.stderr)  # fmt: skip
        return 1


def _line_apis(settings: Settings) -> tuple[Any, Any]:
    from linebot.v3.messaging import AsyncApiClient

    from bot.channels.line import data_api_configuration, line_configuration

    _need(settings.secrets.line_channel_access_token, "LINE_CHANNEL_ACCESS_TOKEN")
    return (
        AsyncApiClient(line_configuration(settings)),
        AsyncApiClient(data_api_configuration(settings)),
    )


def cmd_line_webhook_info(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def job() -> int:
        from linebot.v3.messaging import AsyncMessagingApi

        client, data_client = _line_apis(settings)
        async with client, data_client:
            info = await AsyncMessagingApi(client).get_webhook_endpoint()
        print(f"endpoint: {info.endpoint}\nactive:   {info.active}")
        return 0

    return _run(job)


def cmd_line_set_webhook(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def job() -> int:
        from linebot.v3.messaging import AsyncMessagingApi, SetWebhookEndpointRequest

        client, data_client = _line_apis(settings)
        async with client, data_client:
            api = AsyncMessagingApi(client)
            await api.set_webhook_endpoint(SetWebhookEndpointRequest(endpoint=args.url))
        print(f"LINE webhook set to {args.url} (use the console's Verify button to test it)")
        return 0

    return _run(job)


def cmd_line_rich_menu(args: argparse.Namespace) -> int:
    settings = _settings(args)
    menu = settings.line.rich_menu
    font = find_cjk_font(args.font)
    if font is None:
        print(
            "warning: no Japanese font found (install Debian's fonts-noto-cjk or pass --font); "
            "drawing the English labels only",
            file=sys.stderr,
        )
    image = draw_rich_menu(menu, font)
    if len(image) > MAX_IMAGE_BYTES:
        raise ConfigError(f"line.rich_menu: the drawn image is {len(image)} bytes (LINE: 1 MB)")
    if args.image:
        Path(args.image).write_bytes(image)
        print(f"image written to {args.image}")
    if args.dry_run:
        return 0

    async def job() -> int:
        from linebot.v3.messaging import (
            AsyncMessagingApi,
            AsyncMessagingApiBlob,
            RichMenuRequest,
        )

        client, data_client = _line_apis(settings)
        async with client, data_client:
            api = AsyncMessagingApi(client)
            created = await api.create_rich_menu(RichMenuRequest.from_dict(rich_menu_request(menu)))
            menu_id = created.rich_menu_id
            await AsyncMessagingApiBlob(data_client).set_rich_menu_image(
                menu_id, image, _headers={"Content-Type": "image/png"}
            )
            await api.set_default_rich_menu(menu_id)
        print(f"rich menu {menu_id} uploaded and set as the default for everyone")
        return 0

    return _run(job)


def _telegram_bot(settings: Settings) -> Any:
    from telegram import Bot

    token = _need(settings.secrets.telegram_bot_token, "TELEGRAM_BOT_TOKEN")
    return Bot(token, base_url=settings.telegram.api_base_url)


async def _set_commands(bot: Any, settings: Settings) -> None:
    from telegram import BotCommand

    commands = settings.telegram.commands
    for language in ("ja", "en"):
        await bot.set_my_commands(
            [BotCommand(c.command, c.description.get(language)) for c in commands],
            language_code=language,
        )
    # Everyone else sees the city's default language.
    default = settings.bot.default_language
    await bot.set_my_commands([BotCommand(c.command, c.description.get(default)) for c in commands])


def cmd_telegram_set_webhook(args: argparse.Namespace) -> int:
    settings = _settings(args)
    secret = _need(settings.secrets.telegram_webhook_secret, "TELEGRAM_WEBHOOK_SECRET")

    async def job() -> int:
        async with _telegram_bot(settings) as bot:
            await bot.set_webhook(
                url=args.url,
                secret_token=secret,
                allowed_updates=TELEGRAM_UPDATES,
                drop_pending_updates=args.drop_pending_updates,
            )
            await _set_commands(bot, settings)
        print(f"Telegram webhook set to {args.url}; command menu set (ja, en)")
        return 0

    return _run(job)


def cmd_telegram_webhook_info(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def job() -> int:
        async with _telegram_bot(settings) as bot:
            info = await bot.get_webhook_info()
        print(f"url:     {info.url or '(none)'}\npending: {info.pending_update_count}")
        if info.last_error_message:
            print(f"last error: {info.last_error_message}")
        return 0

    return _run(job)


def cmd_telegram_set_commands(args: argparse.Namespace) -> int:
    settings = _settings(args)

    async def job() -> int:
        async with _telegram_bot(settings) as bot:
            await _set_commands(bot, settings)
        print("Telegram command menu set (ja, en)")
        return 0

    return _run(job)


def register(sub: Any) -> None:
    """Add `line ...` and `telegram ...` to the `python -m bot` parser."""
    line = sub.add_parser("line", help="LINE webhook and rich menu")
    line_sub = line.add_subparsers(dest="line_command", required=True)
    line_sub.add_parser("webhook-info", help="show the webhook URL LINE calls").set_defaults(
        func=cmd_line_webhook_info
    )
    p = line_sub.add_parser("set-webhook", help="set the webhook URL LINE calls")
    p.add_argument("url", help="https://<your host>/webhooks/line")
    p.set_defaults(func=cmd_line_set_webhook)
    p = line_sub.add_parser("rich-menu", help="draw, upload and set the default rich menu")
    p.add_argument("--font", help="a font file with Japanese glyphs (default: Noto Sans CJK)")
    p.add_argument("--image", help="also save the drawn PNG here")
    p.add_argument("--dry-run", action="store_true", help="draw only, upload nothing")
    p.set_defaults(func=cmd_line_rich_menu)

    tg = sub.add_parser("telegram", help="Telegram webhook and command menu")
    tg_sub = tg.add_subparsers(dest="telegram_command", required=True)
    p = tg_sub.add_parser("set-webhook", help="set the webhook (with the secret token)")
    p.add_argument("url", help="https://<your host>/webhooks/telegram")
    p.add_argument("--drop-pending-updates", action="store_true")
    p.set_defaults(func=cmd_telegram_set_webhook)
    tg_sub.add_parser("webhook-info", help="show Telegram's view of the webhook").set_defaults(
        func=cmd_telegram_webhook_info
    )
    tg_sub.add_parser("set-commands", help="set the command menu (ja, en)").set_defaults(
        func=cmd_telegram_set_commands
    )
