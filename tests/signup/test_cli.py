"""Staff commands: tours add/list/close/cancel with clear errors, sign-up export for Excel."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.channels.fake import FakeChannel
from bot.config import load_settings
from bot.runtime import build_runtime
from tests.signup.helpers import fill_individual

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.sqlite3'}"}


def bot(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False,
    )  # fmt: skip


ADD = ["tours", "add", "--kind", "experience", "--title-ja", "移住体験ツアー", "--capacity", "8"]


def test_add_list_close_cancel(env: dict[str, str]) -> None:
    added = bot(env, *ADD, "--start", "2030-05-10 13:00", "--end", "2030-05-13 12:00")
    assert added.returncode == 0 and "tour 1 added" in added.stdout
    listed = bot(env, "tours", "list")
    assert "2030年5月10日" in listed.stdout and "0/8" in listed.stdout and "open" in listed.stdout
    assert "closed" in bot(env, "tours", "close", "1").stdout
    cancelled = bot(env, "tours", "cancel", "1")
    assert cancelled.returncode == 0 and "0 participant(s)" in cancelled.stdout
    assert "cancelled" in bot(env, "tours", "list").stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--start", "2020-01-01 10:00", "--end", "2020-01-02 10:00"], "start: the tour must"),
        (["--start", "2030-01-10 10:00", "--end", "2030-01-09 10:00"], "end: must be after"),
        (["--start", "10 Jan 2030", "--end", "2030-01-12 10:00"], "start: expected a date like"),
        (["--start", "2030-01-10 10:00", "--end", "2030-01-12 10:00", "--deadline",
          "2030-02-01 10:00"], "deadline: must be before"),
    ],
)  # fmt: skip
def test_invalid_tours_are_refused_with_the_reason(
    env: dict[str, str], extra: list[str], message: str
) -> None:
    result = bot(env, *ADD, *extra)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_unknown_tour_is_a_clear_error(env: dict[str, str]) -> None:
    result = bot(env, "tours", "close", "42")
    assert result.returncode == 2 and "tour 42: no such tour" in result.stderr


async def test_export_csv_opens_in_excel_with_japanese(
    env: dict[str, str], clock, faq_library
) -> None:
    assert (
        bot(env, *ADD, "--start", "2030-05-10 13:00", "--end", "2030-05-13 12:00").returncode == 0
    )
    settings = load_settings(ROOT / "config.toml", environ={"DATABASE_URL": env["DATABASE_URL"]})
    runtime = await build_runtime(settings, clock=clock, library=faq_library)
    try:
        chan = FakeChannel(runtime.engine, user_id="hanako")
        await fill_individual(chan, 1)
        await chan.press("form:confirm")
    finally:
        await runtime.aclose()
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "bot", "signups", "export", "--tour", "1"],
        capture_output=True, cwd=ROOT, env=env, timeout=120, check=True,
    )  # fmt: skip
    assert result.stdout.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode("utf-8-sig"))))
    assert len(rows) == 1
    assert rows[0]["name"] == "小諸 花子" and rows[0]["phone"] == "09012345678"
    assert rows[0]["prefecture"] == "東京都" and rows[0]["status"] == "confirmed"
