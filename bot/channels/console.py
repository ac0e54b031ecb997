"""Terminal chat (`python -m bot chat`): interactive on a terminal, scriptable from a pipe."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import TextIO

from bot.channels.render import numbered
from bot.engine import Engine
from bot.messages import EventKind, Incoming

CHANNEL = "console"


async def chat(engine: Engine, user: str, stdin: TextIO, stdout: TextIO) -> None:
    """Read one message per line and print the bot's replies. On a terminal it starts with
    the welcome and a prompt; from a pipe it echoes each line so the transcript reads well."""
    interactive = stdin.isatty()
    serial = 0

    async def send(kind: EventKind, text: str = "") -> None:
        nonlocal serial
        serial += 1
        incoming = Incoming(
            channel=CHANNEL,
            user_id=user,
            kind=kind,
            text=text,
            timestamp=datetime.now(UTC),
        )
        for block in numbered(await engine.handle(incoming)):
            stdout.write(block + "\n")
        stdout.write("\n")
        stdout.flush()

    if interactive:
        await send(EventKind.FOLLOW)
    loop = asyncio.get_running_loop()
    while True:
        if interactive:
            stdout.write("> ")
            stdout.flush()
        line = await loop.run_in_executor(None, stdin.readline)
        if not line:
            break
        text = line.rstrip("\r\n")
        if not interactive:
            stdout.write(f"> {text}\n")
        await send(EventKind.TEXT, text)


def default_user() -> str:
    return "local-terminal"


def run_chat(engine: Engine, user: str | None = None) -> None:  # pragma: no cover - thin
    asyncio.run(chat(engine, user or default_user(), sys.stdin, sys.stdout))
