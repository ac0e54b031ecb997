"""Real bot processes for the fault tests: `python -m bot serve`, `answer` and `worker`, and
the Procfile's accepting-only web process, on free ports against a test database and the
fake platform, killed with SIGKILL at will.

Waiting here is for another process (start-up, a reply reaching the fake platform): it polls
with a deadline rather than sleeping a fixed time, and fails with the process's log tail."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from tests.conftest import ROOT
from tests.fakes.platform import FakePlatform

LINE_SECRET = "fault-line-channel-secret"
TG_SECRET = "fault-tg-webhook-secret"
TG_TOKEN = "123456:fault-token"
START_TIMEOUT = 60.0  # seconds: a loaded 2-core machine starts the analyser slowly


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lexical_config(directory: Path) -> Path:
    """config.toml without the embedding models: the faults are about processes and the
    database, and a restart should take seconds, not the models' load time."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    text, models = re.subn(r'(?m)^dense = "[^"]*"', 'dense = "off"', text)

    def absolute(match: re.Match[str]) -> str:
        # Relative paths are read from the file's own directory: point them back here.
        key, value = match.group(1), match.group(2)
        if key == "cache_dir":
            return f'{key} = "{directory / "faq-cache"}"'
        return f'{key} = "{value if Path(value).is_absolute() else ROOT / value}"'

    text, paths = re.subn(r'(?m)^(directory|cache_dir|synonyms) = "([^"]*)"', absolute, text)
    assert models == 1 and paths == 3, "config.toml's [faq] changed shape: update tests/faults"
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def log_tail(log: Path | None) -> str:
    return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""


async def wait_for(
    what: str, check: Callable[[], Awaitable[bool]], seconds: float, log: Path | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{log_tail(log)}")
        await asyncio.sleep(0.02)


class BotProcess:
    """One `python -m bot <command>` child; `kill()` is a SIGKILL, `start()` starts anew."""

    def __init__(
        self, command: list[str], database_url: str, fake: FakePlatform, workdir: Path, name: str
    ) -> None:
        self.command = command
        self.name = name
        self.log = workdir / f"{name}.log"
        self.config = lexical_config(workdir)
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "LINE_CHANNEL_SECRET": LINE_SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": "fault-line-access-token",
            "LINE_API_BASE_URL": fake.url,
            "TELEGRAM_BOT_TOKEN": TG_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "TELEGRAM_API_BASE_URL": f"{fake.url}/bot",
            "LOG_FORMAT": "json",
            "IJU_CONFIG": str(self.config),
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "bot", "--config", str(self.config), *self.command]

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no flush, no goodbye; what is on disk is all there is."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self) -> str:
        return log_tail(self.log)


class WebProcess(BotProcess):
    def __init__(
        self, database_url: str, fake: FakePlatform, workdir: Path, port: int | None = None
    ) -> None:
        self.port = port or free_port()
        super().__init__(
            ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
            database_url, fake, workdir, "web",
        )  # fmt: skip
        self.url = f"http://127.0.0.1:{self.port}"

    async def ready(self) -> None:
        async def answering() -> bool:
            if not self.alive():
                raise AssertionError(f"the web process exited\n{self.tail()}")
            try:
                async with httpx.AsyncClient(timeout=1) as client:
                    return (await client.get(f"{self.url}/readyz")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for("the web process to be ready", answering, START_TIMEOUT, self.log)


class AcceptingWeb(WebProcess):
    """The Procfile's `web`: uvicorn with WEB_ANSWERS=0, only accepting; `answer` answers."""

    def __init__(
        self, database_url: str, fake: FakePlatform, workdir: Path, port: int | None = None
    ) -> None:
        super().__init__(database_url, fake, workdir, port)
        self.env["WEB_ANSWERS"] = "0"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--factory", "bot.web:app_from_env",
                "--host", "127.0.0.1", "--port", str(self.port), "--no-access-log"]  # fmt: skip


def answer_process(database_url: str, fake: FakePlatform, workdir: Path) -> BotProcess:
    """The Procfile's `answer`: claims the accepted events, answers them."""
    return BotProcess(["answer"], database_url, fake, workdir, "answer")
