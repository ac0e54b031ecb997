"""Every process's counters reach the scrape (issue 15, defect 12): the Procfile's `web`
and `answer` run as the Procfile writes them (its command lines, its defaults), a LINE
message is accepted by `web` and answered by `answer`, and web's /metrics then shows the
event `answer` handled and the question it answered."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bot.storage import migrate
from bot.storage.db import create_engine
from tests.channels.conftest import line_body, line_event, sign
from tests.conftest import ROOT, Clock
from tests.fakes.platform import FakePlatform
from tests.faults import test_kill_worker as broadcast
from tests.faults.processes import LINE_SECRET, BotProcess, wait_for

PORT = 8743
REPLY = "/v2/bot/message/reply"


def procfile(name: str) -> str:
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip())[name]


class ProcfileProcess(BotProcess):
    """One Procfile line run by a shell in a directory of its own, as a process manager
    would: whatever the line sets (or leaves unset) is what the process gets. bash runs the
    single command with exec, so stop() reaches the process itself."""

    def __init__(
        self, line: str, database_url: str, fake: FakePlatform, workdir: Path, extra: str = ""
    ) -> None:
        super().__init__([], database_url, fake, workdir, line)
        self.line = procfile(line) + extra
        bin_dir = str(Path(sys.executable).parent)
        self.env |= {"PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "PYTHONPATH": str(ROOT),
                     "PORT": str(PORT), "LOG_LEVEL": "WARNING"}  # fmt: skip
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the Procfile's default decides
        self.workdir = workdir

    def argv(self) -> list[str]:
        return ["bash", "-c", self.line]

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(), cwd=self.workdir, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )


@pytest.fixture
def fake() -> Iterator[FakePlatform]:
    platform = FakePlatform()
    with platform.running():
        yield platform


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    for line in metrics.splitlines():
        match = re.match(r"^(\w+)(?:\{([^}]*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


async def test_the_answer_process_counts_show_at_the_web_scrape(
    tmp_path: Path, fake: FakePlatform
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    engine = create_engine(database_url)
    await migrate.upgrade(engine)
    await engine.dispose()
    web = ProcfileProcess("web", database_url, fake, tmp_path)
    answer = ProcfileProcess("answer", database_url, fake, tmp_path)
    url = f"http://127.0.0.1:{PORT}"
    try:
        web.start()
        answer.start()
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready() -> bool:
                assert web.alive() and answer.alive(), web.tail() + answer.tail()
                try:
                    return (await client.get(f"{url}/readyz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await wait_for("web to be ready", ready, 60, web.log)
            clock = Clock(datetime.now(UTC))
            body = line_body(line_event("text_message", clock, text="空き家バンクについて教えて"))
            res = await client.post(
                f"{url}/webhooks/line", content=body,
                headers={"x-line-signature": sign(body, LINE_SECRET)},
            )  # fmt: skip
            assert res.status_code == 200

            async def replied() -> bool:
                assert answer.alive(), answer.tail()
                return any(r.path == REPLY for r in fake.requests)

            await wait_for("the answer process to reply", replied, 60, answer.log)
            metrics = (await client.get(f"{url}/metrics")).text
    finally:
        answer.stop()
        web.stop()
    # Handled and answered in `answer`, a process web never talked to, seen at web's scrape.
    assert sample(metrics, "iju_event_handle_seconds_count", channel="line") == 1.0, metrics
    questions = sum(
        sample(metrics, "iju_faq_questions_total", outcome=outcome)
        for outcome in ("answered", "suggested", "not_answered")
    )
    assert questions == 1.0, metrics
    # The web process's own counters are in the same scrape.
    assert sample(metrics, "iju_http_responses_total", route="webhook_line", status="200") == 1.0


async def test_the_worker_process_deliveries_show_at_the_web_scrape(
    tmp_path: Path, fake: FakePlatform, monkeypatch: pytest.MonkeyPatch
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"
    monkeypatch.setattr(broadcast, "LINE_PEOPLE", 0)
    monkeypatch.setattr(broadcast, "TELEGRAM_CHATS", 3)
    await broadcast.prepare(database_url)  # an announcement to 3 Telegram chats, queued
    web = ProcfileProcess("web", database_url, fake, tmp_path)
    # The Procfile's line as written, run every half second instead of every 15 s.
    worker = ProcfileProcess("worker", database_url, fake, tmp_path, extra=" --every 0.5")
    url = f"http://127.0.0.1:{PORT}"
    try:
        web.start()
        worker.start()
        async with httpx.AsyncClient(timeout=5) as client:

            async def sent() -> bool:
                assert worker.alive() and web.alive(), worker.tail() + web.tail()
                return sum(1 for r in fake.requests if r.path.endswith("/sendMessage")) == 3

            await wait_for("the worker to send", sent, 60, worker.log)

            async def scraped() -> bool:  # the worker counts once its batch is committed
                try:
                    text = (await client.get(f"{url}/metrics")).text
                except httpx.HTTPError:
                    return False
                return sample(text, "iju_deliveries_total", channel="telegram", result="sent") > 0

            await wait_for("web's scrape to show the deliveries", scraped, 30, web.log)
            metrics = (await client.get(f"{url}/metrics")).text
    finally:
        worker.stop()
        web.stop()
    assert sample(metrics, "iju_deliveries_total", channel="telegram", result="sent") == 3.0
