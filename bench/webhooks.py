"""Webhook throughput: our /webhooks/line and /webhooks/telegram next to the SDKs' bare echo bots.

usage: .venv/bin/python bench/webhooks.py [-n 2000] [-c 50] [--runs 1] [--channels line,telegram]
                                          [--database-url URL] [--json]

For each channel and run, in this order and in separate processes on 127.0.0.1 only:
  1. the bare echo bot from ../shared/webhook-bench (line_echo.py / tg_echo.py) with a fresh
     fakeplatform.py, measured by loadgen.py;
  2. `python -m bot serve` with the same fake and loadgen settings, on a fresh database
     (a temporary SQLite file unless --database-url is given; it must be empty or migrated).
The harness (fakeplatform.py, loadgen.py) is used from its shared path, never copied. Every
process is stopped at the end; each phase is bounded by loadgen's own limits and a timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / "shared" / "webhook-bench"
SECRET = "bench-secret"
TG_TOKEN = "123456:bench-token"
PHASE_TIMEOUT = 900  # seconds for one loadgen run (loadgen stops itself well before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"bench: server exited early:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as res:
                if res.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"bench: {url} did not become healthy:\n{log.read_text(errors='replace')[-2000:]}")


def platform_env(channel: str, fake_port: int, bot_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "TELEGRAM_"))}
    env["PORT"] = str(bot_port)
    if channel == "line":
        env.update(
            LINE_CHANNEL_SECRET=SECRET,
            LINE_CHANNEL_ACCESS_TOKEN="bench-token",
            LINE_API_BASE_URL=f"http://127.0.0.1:{fake_port}",
        )
    else:
        env.update(
            TELEGRAM_BOT_TOKEN=TG_TOKEN,
            TELEGRAM_WEBHOOK_SECRET=SECRET,
            TELEGRAM_API_BASE_URL=f"http://127.0.0.1:{fake_port}/bot",
        )
    return env


def measure(channel: str, target: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    fake_port, bot_port = free_port(), free_port()
    record = work / f"{target}-{channel}-{fake_port}.jsonl"
    env = platform_env(channel, fake_port, bot_port)
    if target == "echo":
        script = HARNESS / ("line_echo.py" if channel == "line" else "tg_echo.py")
        cmd = [sys.executable, str(script)]
    else:
        db = args.database_url or f"sqlite+aiosqlite:///{work / f'bench-{channel}-{bot_port}.db'}"
        env.update(DATABASE_URL=db, LOG_LEVEL="WARNING")
        cmd = [sys.executable, "-m", "bot", "serve", "--port", str(bot_port)]
    fake_cmd = [sys.executable, str(HARNESS / "fakeplatform.py"), str(fake_port), str(record)]
    bot_log = work / f"{target}-{channel}.log"
    with (
        process(fake_cmd, env, work / "fake.log"),
        process(cmd, env, bot_log) as bot,
    ):
        url = f"http://127.0.0.1:{bot_port}"
        wait_healthy(url, bot, bot_log)
        load = [
            sys.executable, str(HARNESS / "loadgen.py"), channel, "--url", url,
            "--secret", SECRET, "--record", str(record),
            "-n", str(args.n), "-c", str(args.c), "--json",
        ]  # fmt: skip
        done = subprocess.run(load, capture_output=True, text=True, timeout=PHASE_TIMEOUT)
        if done.returncode != 0:
            sys.exit(f"bench: loadgen failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["target"] = target
        # Webhooks answered per second is what the platform sees; replies per second (until
        # the last reply reached the fake) is how fast the bot actually answers people.
        drain = max(result.get("reply_drain_s") or 0.0, 0.0)
        result["replies_per_s"] = round(result["replies"] / (result["wall_s"] + drain), 1)
        return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="events per measurement (max 20,000)")
    ap.add_argument("-c", type=int, default=50, help="POSTs in flight")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--channels", default="line,telegram")
    ap.add_argument("--database-url", help="our bot's database (default: a fresh SQLite file)")
    ap.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = ap.parse_args()
    if not (1 <= args.n <= 20_000 and 1 <= args.c <= 500 and 1 <= args.runs <= 5):
        sys.exit("bench: need 1 <= n <= 20000, 1 <= c <= 500, 1 <= runs <= 5")
    if not (HARNESS / "loadgen.py").exists():
        sys.exit(f"bench: the reference harness is missing at {HARNESS}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        for _ in range(args.runs):
            for channel in args.channels.split(","):
                for target in ("echo", "iju-bot"):
                    result = measure(channel, target, args, Path(tmp))
                    rows.append(result)
                    if args.json:
                        print(json.dumps(result, ensure_ascii=False), flush=True)
                    else:
                        print(
                            f"{channel:8} {target:8} {result['events_per_s']:8.1f} events/s  "
                            f"{result['replies_per_s']:7.1f} replies/s  "
                            f"http p50 {result['http_p50_ms']:6.1f} ms  "
                            f"p99 {result['http_p99_ms']:7.1f} ms  "
                            f"replies {result['replies']}/{result['replies_expected']} "
                            f"(dup {result['duplicate_replies']})  "
                            f"POST->reply p99 {result['reply_p99_ms']:.0f} ms  "
                            f"errors {result['errors']}",
                            flush=True,
                        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
