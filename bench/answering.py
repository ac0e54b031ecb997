"""Answering capacity: how fast `python -m bot answer` processes drain a backlog of accepted
LINE events on PostgreSQL, and what each event costs in CPU, process by process.

usage: .venv/bin/python bench/answering.py [--procs 1,2] [-n 2000] [--dense off] [--runs 1]

For each process count, on a fresh PostgreSQL database with the shared fakeplatform.py as
LINE: start the answer processes and wait until they are ready (models loaded), then store -n
signed-shape LINE text events (FAQ questions, one person each) through the inbox's own
accept(), and time until every one has been answered and its reply sent. Reported: events
answered per second, and CPU milliseconds per event of the answer processes, of PostgreSQL
(every `postgres` process) and of the fake platform: CPU per event is what limits answers per
second on a shared machine, and it holds still when the machine's load changes. PostgreSQL's
figure is every `postgres` process alive at both ends (autovacuum included), so it is rough.
`bench/webhooks.py` measures the same answering end to end behind the web process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from webhooks import (
    HARNESS,
    ROOT,
    config_with_dense,
    free_port,
    fresh_database,
    platform_env,
    process,
)

QUESTIONS = [
    "空き家バンクについて教えて",
    "保育園の空きはありますか",
    "コワーキングスペースはある？",
    "移住の補助金は？",
    "What is the akiya bank?",
    "テレワークできる場所を探しています",
    "学童保育について知りたい",
]


def cpu_seconds(*, pid: int | None = None, comm: str | None = None) -> float:
    """utime + stime of one process, or of every process with that command name."""
    total = 0
    pids = [str(pid)] if pid is not None else [d for d in os.listdir("/proc") if d.isdigit()]
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        if comm is not None and stat[stat.index("(") + 1 : stat.rindex(")")] != comm:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def event(run: str, i: int) -> tuple[str, dict[str, Any]]:
    event_id = f"01AB{run}{i:016d}"
    return event_id, {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": f"U{run}{i:024x}"},
        "replyToken": f"{run}{i:024x}",
        "message": {"type": "text", "id": str(10**15 + i), "quoteToken": f"q{i}",
                    "text": QUESTIONS[i % len(QUESTIONS)]},
    }  # fmt: skip


async def fill_and_wait(config: Path, n: int, run: str, limit: float) -> float:
    """Accept n events through the inbox (answer=False), return seconds until all are sent."""
    from sqlalchemy import text

    from bot.channels.line import LineChannel
    from bot.config import load_settings
    from bot.engine import utc_now
    from bot.runtime import build_runtime

    settings = load_settings(config)
    runtime = await build_runtime(settings)  # this process only stores and watches
    line, client = LineChannel.create(
        settings, sessions=runtime.sessions, engine=runtime.engine, clock=utc_now, answer=False
    )
    try:
        events = [event(run, i) for i in range(n)]
        start = time.perf_counter()
        for k in range(0, n, 100):
            await line.inbox.accept(events[k : k + 100])
        # Through the status index: a scan of every row's payload would be PostgreSQL CPU
        # counted against the answers.
        left_sql = text(
            "SELECT count(*) FROM webhook_inbox WHERE status IN ('accepted', 'processed')"
        )
        failed_sql = text("SELECT count(*) FROM webhook_inbox WHERE status = 'failed'")
        while time.perf_counter() - start < limit:
            await asyncio.sleep(0.1)
            async with runtime.sessions() as session:
                if not await session.scalar(left_sql):
                    wall = time.perf_counter() - start
                    if failed := await session.scalar(failed_sql):
                        raise SystemExit(f"bench: {failed} event(s) failed, see the logs")
                    return wall
        raise SystemExit(f"bench: backlog not drained within {limit:.0f} s")
    finally:
        await line.aclose()
        await client.close()
        await runtime.aclose()


def measure(procs: int, args: argparse.Namespace, work: Path, config: Path) -> dict[str, Any]:
    fake_port = free_port()
    env = platform_env("line", fake_port, free_port())
    env["LOG_LEVEL"] = "WARNING"
    with fresh_database(args.admin_url, env) as url:
        env["DATABASE_URL"] = url
        os.environ.update({k: v for k, v in env.items() if k.startswith(("LINE_", "DATABASE"))})
        fake_cmd = [sys.executable, str(HARNESS / "fakeplatform.py"), str(fake_port),
                    str(work / "record.jsonl")]  # fmt: skip
        with process(fake_cmd, env, work / "fake.log") as fake:
            answer = [sys.executable, "-m", "bot", "--config", str(config), "answer", "--nice", "0"]
            outs = [work / f"answer-{procs}-{k}.log" for k in range(procs)]
            with contextlib.ExitStack() as stack:
                answerers = [stack.enter_context(process(answer, env, out)) for out in outs]
                deadline = time.monotonic() + 180
                while not all("answering" in o.read_text(errors="replace") for o in outs):
                    if time.monotonic() > deadline or any(p.poll() is not None for p in answerers):
                        raise SystemExit(f"bench: answer process not ready: {outs[0]}")
                    time.sleep(0.2)
                time.sleep(1)  # let the start-up claims settle
                before = (
                    sum(cpu_seconds(pid=p.pid) for p in answerers),
                    cpu_seconds(comm="postgres"),
                    cpu_seconds(pid=fake.pid),
                )
                run = f"{procs}{int(time.time()) % 100000:05d}"
                wall = asyncio.run(fill_and_wait(config, args.n, run, args.timeout))
                after = (
                    sum(cpu_seconds(pid=p.pid) for p in answerers),
                    cpu_seconds(comm="postgres"),
                    cpu_seconds(pid=fake.pid),
                )
    ms = [(b - a) * 1000 / args.n for a, b in zip(before, after, strict=True)]
    return {"procs": procs, "n": args.n, "seconds": round(wall, 2),
            "answers_per_s": round(args.n / wall, 1), "answer_cpu_ms": round(ms[0], 2),
            "postgres_cpu_ms": round(ms[1], 2), "fake_cpu_ms": round(ms[2], 2)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--procs", default="1,2", help="answer process counts, e.g. 1,2")
    ap.add_argument("-n", type=int, default=2000, help="events per measurement")
    ap.add_argument("--dense", default="off", help="[faq] dense for the answer processes")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=600.0)
    ap.add_argument(
        "--admin-url",
        default=os.environ.get("BENCH_ADMIN_URL", "postgresql+asyncpg://postgres@127.0.0.1/postgres"),
    )  # fmt: skip
    args = ap.parse_args()
    print(f"# answering, PostgreSQL, dense={args.dense}, n={args.n}, load {os.getloadavg()[0]:.1f}")
    print("procs  answers/s  CPU ms/event: answerers  postgres  fake LINE")
    with (
        tempfile.TemporaryDirectory(prefix="iju-answering-") as tmp,
        config_with_dense(args.dense) as config,
    ):
        for _ in range(args.runs):
            for procs in [int(p) for p in args.procs.split(",")]:
                r = measure(procs, args, Path(tmp), config)
                ms = (r["answer_cpu_ms"], r["postgres_cpu_ms"], r["fake_cpu_ms"])
                cpu = f"{ms[0]:22.2f}  {ms[1]:8.2f}  {ms[2]:9.2f}"
                print(f"{r['procs']:5d}  {r['answers_per_s']:9.1f}  {cpu}", flush=True)
    print(f"# machine load after: {os.getloadavg()[0]:.1f}; root {ROOT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
