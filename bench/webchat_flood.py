"""LINE webhook latency while chatty web chat clients post as fast as they are answered
(issue 15, defect 5), and what the web chat took from them.

usage: .venv/bin/python bench/webchat_flood.py [--clients 20] [--seconds 15] [--quiet-seconds 5]
           [--rate 5] [--fresh-cookies] [--pg] [--shape serve|procfile] [--port 8721]
           [--code DIR] [--json]

The same processes, database and fake LINE as bench/login_flood.py (whose helpers it uses):
first --quiet-seconds of LINE webhooks alone, then --seconds of them while --clients web chat
clients each load the page once and post questions back to back (--fresh-cookies: each post
from a new cookie, as a script dodging the per-visitor limit would). All clients share one
address, 127.0.0.1, so the per-address limit applies to them together. --code runs another
checkout (e.g. `git archive` of the commit before the limits) for a before figure. Prints
p50 / p95 / p99 / max of LINE's 200 per phase and the web chat's answers by status.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import login_flood as lf  # noqa: E402

from tests.fakes.platform import FakePlatform  # noqa: E402

QUESTIONS = ["ゴミの出し方を教えて", "空き家バンクについて", "保育園の空きは？", "火星に住めますか"]


async def chatter(base: str, clients: int, stop: asyncio.Event, fresh: bool) -> Counter[int]:
    answers: Counter[int] = Counter()

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as browser:
            await browser.get("/")
            n = 0
            while not stop.is_set():
                n += 1
                if fresh:
                    browser.cookies.clear()
                    await browser.get("/")
                res = await browser.post(
                    "/api/chat", json={"text": QUESTIONS[n % len(QUESTIONS)], "id": f"{k}-{n}"}
                )
                answers[res.status_code] += 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    return answers


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return round(ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000, 1)


async def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    quiet = await lf.webhooks(base, args.rate, args.quiet_seconds, 0)
    stop = asyncio.Event()
    chatting = asyncio.create_task(chatter(base, args.clients, stop, args.fresh_cookies))
    start = time.perf_counter()
    during = await lf.webhooks(base, args.rate, args.seconds, 100_000)
    stop.set()
    answers = await chatting
    elapsed = time.perf_counter() - start
    return {
        "quiet": lf.figures(quiet) | {"p99_ms": p99(quiet)},
        "flood": lf.figures(during) | {"p99_ms": p99(during)},
        "chat": dict(sorted(answers.items())),
        "chat_per_s": round(sum(answers.values()) / elapsed, 1),
        "answered_per_s": round(answers.get(200, 0) / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--quiet-seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=5, help="LINE webhooks a second")
    parser.add_argument("--fresh-cookies", action="store_true", help="a new cookie per post")
    parser.add_argument("--pg", action="store_true", help="a fresh PostgreSQL database")
    parser.add_argument("--shape", choices=("serve", "procfile"), default="serve")
    parser.add_argument("--port", type=int, default=8721)
    parser.add_argument("--code", type=Path, default=lf.ROOT, help="checkout whose bot to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.shape == "procfile" and not args.pg:
        parser.error("--shape procfile runs several processes: it needs --pg")
    code = args.code.resolve()
    with (
        tempfile.TemporaryDirectory() as tmp,
        lf.database(args.pg, Path(tmp)) as url,
        FakePlatform().running() as fake,
    ):
        env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "DATABASE_URL": url,
            "LINE_CHANNEL_SECRET": lf.SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": "bench-line-token",
            "LINE_API_BASE_URL": fake.url,
            "CONSOLE_SECRET_KEY": "bench-console-secret-" + "x" * 32,
            "LOG_LEVEL": "WARNING",
        }
        env.pop("TELEGRAM_BOT_TOKEN", None)
        subprocess.run([sys.executable, "-m", "bot", "migrate"], env=env, cwd=code,
                       check=True, capture_output=True)  # fmt: skip
        with lf.serve(code, env, args.port, args.shape, Path(tmp)):
            result = asyncio.run(measure(f"http://127.0.0.1:{args.port}", args))
    result |= {"clients": args.clients, "rate": args.rate, "fresh_cookies": args.fresh_cookies,
               "shape": args.shape,
               "database": "postgresql" if args.pg else "sqlite", "code": str(code)}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(f"code {code}  shape {args.shape}  database {result['database']}  "
              f"clients {args.clients}  fresh cookies {args.fresh_cookies}")  # fmt: skip
        for phase in ("quiet", "flood"):
            f = result[phase]
            print(f"  webhooks {phase:5}: n={f['n']} p50 {f['p50_ms']} ms  p95 {f['p95_ms']} ms"
                  f"  p99 {f['p99_ms']} ms  max {f['max_ms']} ms")  # fmt: skip
        print(f"  web chat: {result['chat']} ({result['chat_per_s']}/s posted, "
              f"{result['answered_per_s']}/s answered)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
