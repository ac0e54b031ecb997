"""Webhook throughput on PostgreSQL, next to the SDKs' bare echo bots measured in the same run.

usage: .venv/bin/python bench/webhooks.py [--mode closed|steady|burst] [--shapes 1,2,1+1a]
           [--dense auto] [--channels line,telegram] [-n 2000] [-c 50] [--rate 100]
           [--seconds 30] [--burst 20000] [--burst-seconds 10] [--runs 1] [--json]
           [--admin-url postgresql+asyncpg://postgres@127.0.0.1/postgres]

For each channel and run, in separate processes on 127.0.0.1 only, each with a fresh shared
fakeplatform.py as the platform:
  1. the bare echo bot from ../shared/webhook-bench (line_echo.py / tg_echo.py): the reference;
  2. iju-bot in each deployment shape, each on a fresh PostgreSQL database created here,
     migrated with `python -m bot migrate`, and dropped afterwards. A shape is "W" (the
     Procfile's web: uvicorn --workers W, each process accepting and answering) or "W+Aa"
     (W web workers with WEB_ANSWERS=0 that only accept, beside A `python -m bot answer`
     processes), e.g. 1, 2, 1+1a, 1+2a; 1+0a measures accepting alone. --dense sets
     [faq] dense (auto, use, off; several comma-separated) through a temporary config.toml.
Modes: closed = the shared loadgen.py (-n events, -c in flight); steady = bench/paced.py at
--rate events/s for --seconds; burst = bench/paced.py sending --burst events in
--burst-seconds, sampling /metrics (inbox depth) every second until the backlog is gone.
Every process is stopped at the end; each phase is bounded by its own limits and a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HARNESS = ROOT.parent / "shared" / "webhook-bench"
BIN = Path(sys.executable).parent
SECRET = "bench-secret"
TG_TOKEN = "123456:bench-token"
PHASE_TIMEOUT = 900  # seconds for one load run (the load generators stop themselves before)
BURST_TIMEOUT = 3600
SHAPE = re.compile(r"^(\d)(?:\+(\d)a)?$")


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
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_for(url: str, procs: list[subprocess.Popen[bytes]], logs: list[Path],
             ready: list[tuple[Path, str, int]]) -> None:  # fmt: skip
    """Until /healthz answers and every log shows its readiness line as often as wanted (each
    uvicorn worker, each answer process has its models loaded)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for proc, log in zip(procs, logs, strict=True):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                sys.exit(f"bench: a process exited early:\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as res:
                healthy = res.status == 200
        except OSError:
            healthy = False
        if healthy and all(
            path.read_text(errors="replace").count(line) >= count for path, line, count in ready
        ):
            return
        time.sleep(0.3)
    sys.exit(f"bench: {url} did not become ready:\n{logs[0].read_text(errors='replace')[-3000:]}")


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


# --- a fresh PostgreSQL database per measurement ----------------------------------------------
async def _admin(admin_url: str, sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def fresh_database(admin_url: str, env: dict[str, str]) -> Iterator[str]:
    name = f"bench_web_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bot", "migrate"],
            env={**env, "DATABASE_URL": url},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            sys.exit(f"bench: migrate failed: {done.stderr[-2000:]}")
        yield url
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def config_with_dense(dense: str) -> Iterator[Path]:
    """config.toml with [faq] dense set; beside it, so its relative paths still hold."""
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    changed, count = re.subn(r'(?m)^dense = ".*"$', f'dense = "{dense}"', text)
    if count != 1:
        sys.exit("bench: config.toml has no single `dense = ...` line to set")
    path = ROOT / f".bench-config-{dense}-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(changed, encoding="utf-8")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def rss_mb(pid: int) -> dict[str, float]:
    """Resident and peak memory of a process and its children (uvicorn's workers), in MB."""
    out: dict[str, float] = {}
    pids = [pid]
    with suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        out[str(p)] = round(int(fields.get("VmHWM", "0 kB").split()[0]) / 1024, 1)
    return out


# --- one measurement ----------------------------------------------------------------------------
def load_command(channel: str, url: str, record: Path, args: argparse.Namespace) -> list[str]:
    if args.mode == "closed":
        return [
            sys.executable, str(HARNESS / "loadgen.py"), channel, "--url", url,
            "--secret", SECRET, "--record", str(record),
            "-n", str(args.n), "-c", str(args.c), "--json",
            "--wait-seconds", str(args.wait_seconds),
        ]  # fmt: skip
    paced = [
        sys.executable, str(ROOT / "bench" / "paced.py"), channel, "--url", url,
        "--secret", SECRET, "--record", str(record), "--json",
        "--wait-seconds", str(args.wait_seconds),
    ]  # fmt: skip
    if args.mode == "steady":
        return [*paced, "--rate", str(args.rate), "--seconds", str(args.seconds)]
    rate = args.burst / args.burst_seconds
    return [
        *paced, "--rate", str(rate), "--seconds", str(args.burst_seconds),
        "--metrics", f"{url}/metrics",
    ]  # fmt: skip


def measure(
    channel: str, target: str, args: argparse.Namespace, work: Path, dense: str | None = None
) -> dict[str, Any]:
    fake_port, bot_port = free_port(), free_port()
    record = work / f"{target}-{channel}-{fake_port}.jsonl"
    env = platform_env(channel, fake_port, bot_port)
    url = f"http://127.0.0.1:{bot_port}"
    with ExitStack() as stack:
        stack.enter_context(
            process(
                [sys.executable, str(HARNESS / "fakeplatform.py"), str(fake_port), str(record)],
                env,
                work / "fake.log",
            )
        )
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[Path] = []
        ready: list[tuple[Path, str, int]] = []
        if target == "echo":
            script = HARNESS / ("line_echo.py" if channel == "line" else "tg_echo.py")
            logs.append(work / f"echo-{channel}.log")
            procs.append(stack.enter_context(process([sys.executable, str(script)], env, logs[0])))
        else:
            shape = SHAPE.match(target)
            assert shape is not None
            web, answerers = int(shape.group(1)), int(shape.group(2) or 0)
            split = shape.group(2) is not None  # "1+0a": accepting only, nobody answers
            config = stack.enter_context(config_with_dense(dense or "auto"))
            db = stack.enter_context(fresh_database(args.admin_url, env))
            env.update(
                DATABASE_URL=db,
                IJU_CONFIG=str(config),
                LOG_LEVEL=args.log_level,
                LOG_FORMAT="json",
                WEB_ANSWERS="0" if split else "1",
            )
            # The Procfile's web line, on loopback.
            web_cmd = [
                str(BIN / "uvicorn"), "--factory", "bot.web:app_from_env", "--workers", str(web),
                "--host", "127.0.0.1", "--port", str(bot_port), "--no-access-log",
            ]  # fmt: skip
            logs.append(work / f"web-{channel}.log")
            procs.append(stack.enter_context(process(web_cmd, env, logs[-1])))
            ready.append((logs[-1], "Application startup complete", web))
            for i in range(answerers):
                logs.append(work / f"answer{i}-{channel}.log")
                cmd = [sys.executable, "-m", "bot", "answer"]
                procs.append(stack.enter_context(process(cmd, env, logs[-1])))
                ready.append((logs[-1], "answering webhook events", 1))
        wait_for(url, procs, logs, ready)
        done = subprocess.run(
            load_command(channel, url, record, args),
            capture_output=True,
            text=True,
            # A burst's backlog drains at the answering rate: 20,000 events at 20 a second
            # take 17 minutes on this machine.
            timeout=BURST_TIMEOUT if args.mode == "burst" else PHASE_TIMEOUT,
        )
        if done.returncode != 0:
            sys.exit(f"bench: load generator failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["rss_peak_mb"] = {
            name: rss_mb(p.pid) for name, p in zip((log.stem for log in logs), procs, strict=True)
        }
    result.update(target=target, dense=dense if target != "echo" else None, mode=args.mode)
    if args.mode == "closed":
        # Webhooks answered per second is what the platform sees; replies per second (until
        # the last reply reached the fake) is how fast the bot actually answers people.
        drain = max(result.get("reply_drain_s") or 0.0, 0.0)
        result["replies_per_s"] = round(result["replies"] / (result["wall_s"] + drain), 1)
    return result


def line_for(result: dict[str, Any], echo: dict[str, Any] | None) -> str:
    ratio = ""
    if echo and echo.get("events_per_s") and result["target"] != "echo":
        ratio = f" ({result['events_per_s'] / echo['events_per_s']:.2f}x echo)"
    name = result["target"] + (f"/{result['dense']}" if result.get("dense") else "")
    depth = ""
    if "depth_max" in result:
        depth = f"  depth max {result['depth_max']:.0f} last {result['depth_last']:.0f}"
    return (
        f"{result['channel']:8} {name:12} {result['events_per_s']:7.1f} events/s{ratio}  "
        f"http p50 {result['http_p50_ms']:6.1f} p99 {result['http_p99_ms']:7.1f} ms  "
        f"{result['replies_per_s']:6.1f} replies/s  "
        f"replies {result['replies']}/{result['replies_expected']} "
        f"(dup {result['duplicate_replies']})  "
        f"POST->reply p50 {result['reply_p50_ms']:.0f} p99 {result['reply_p99_ms']:.0f} ms  "
        f"errors {result['errors']}{depth}"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mode", choices=["closed", "steady", "burst"], default="closed")
    ap.add_argument("--shapes", default="1,2", help="deployment shapes, e.g. 1,2,1+1a,1+2a")
    ap.add_argument("--dense", default="auto", help="[faq] dense values, e.g. auto,use,off")
    ap.add_argument("-n", type=int, default=2000, help="closed: events per measurement")
    ap.add_argument("-c", type=int, default=50, help="closed: POSTs in flight")
    ap.add_argument("--rate", type=float, default=100.0, help="steady: events per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="steady: how long")
    ap.add_argument("--burst", type=int, default=20_000, help="burst: events")
    ap.add_argument("--burst-seconds", type=float, default=10.0, help="burst: sent within")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument(
        "--wait-seconds", type=float, default=60.0,
        help="stop waiting for replies after this long without a new one (a slow answerer "
        "first works through the load generator's 100 warm-up events)",
    )  # fmt: skip
    ap.add_argument("--channels", default="line,telegram")
    ap.add_argument("--no-echo", action="store_true", help="skip the reference (debugging only)")
    ap.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1/postgres"),
        help="a PostgreSQL database to create (and drop) the fresh bench databases from",
    )  # fmt: skip
    ap.add_argument("--log-level", default="INFO", help="the bot's LOG_LEVEL (production: INFO)")
    ap.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = ap.parse_args()
    shapes = args.shapes.split(",")
    if not (1 <= args.n <= 20_000 and 1 <= args.c <= 500 and 1 <= args.runs <= 5):
        sys.exit("bench: need 1 <= n <= 20000, 1 <= c <= 500, 1 <= runs <= 5")
    if not all(SHAPE.match(s) for s in shapes):
        sys.exit("bench: shapes look like 1, 2, 1+1a, 2+2a")
    if not (HARNESS / "loadgen.py").exists():
        sys.exit(f"bench: the reference harness is missing at {HARNESS}")
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as tmp:
        for _ in range(args.runs):
            for channel in args.channels.split(","):
                echo = None if args.no_echo else measure(channel, "echo", args, Path(tmp))
                todo = [("echo", None)] if echo else []
                todo += [(s, d) for s in shapes for d in args.dense.split(",")]
                for target, dense in todo:
                    result = echo if target == "echo" else measure(
                        channel, target, args, Path(tmp), dense
                    )  # fmt: skip
                    assert result is not None
                    if args.json:
                        print(json.dumps(result, ensure_ascii=False), flush=True)
                    else:
                        print(line_for(result, echo), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
