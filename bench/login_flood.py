"""Webhook latency during a login flood, on `serve` or the Procfile's web (issue 15, defect 2).

usage: .venv/bin/python bench/login_flood.py [--clients 8] [--seconds 20] [--quiet-seconds 5]
           [--rate 5] [--spread] [--pg] [--shape serve|procfile] [--port 8711] [--code DIR]
           [--json]

One `python -m bot serve --with-worker` (`make run`'s shape: it accepts, answers and sends),
or with --shape procfile the Procfile's web (uvicorn, WEB_ANSWERS=0) beside one `answer`
process (PostgreSQL only), on a fresh database (SQLite in a temporary directory, or with --pg
a fresh PostgreSQL database created here and dropped afterwards), LINE pointed at
tests/fakes/platform.py's fake on an ephemeral port. First --quiet-seconds of LINE webhooks
alone at --rate a second, then --seconds of the same webhooks while --clients clients post the
login form as fast as they are answered (each opens the form for its CSRF token, then posts an
unknown e-mail and a wrong password: every one costs a password hash and none locks an
account).

Webhooks are sent on a fixed schedule (a late answer does not delay the next request), and
the time to LINE's 200 is measured; LINE wants it within 2 s. --spread gives each login
request its own client address (X-Forwarded-For, which uvicorn trusts from 127.0.0.1), so
the per-address limit never answers and the hashing queue alone is measured. --code runs
another checkout's `bot` (e.g. a `git worktree` of the commit before the fix) for a before
figure. Prints p50 / p95 / max per phase and the login answers by status.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.fakes.platform import FakePlatform  # noqa: E402

SECRET = "bench-line-secret"
STAFF = "bench-admin@city.example.jp"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
WEBHOOK_TIMEOUT_S = 10.0
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def line_body(n: int) -> bytes:
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": f"U{n % 20:032x}"},
        "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": uuid.uuid4().hex,
        "message": {"id": str(10**17 + n), "type": "text", "text": "ゴミの出し方を教えて"},
    }
    payload = {"destination": "U0123456789abcdef0123456789abcdef", "events": [event]}
    return json.dumps(payload, ensure_ascii=False).encode()


def sign(body: bytes) -> str:
    return base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()


@contextmanager
def database(use_pg: bool, tmp: Path) -> Iterator[str]:
    if not use_pg:
        yield f"sqlite+aiosqlite:///{tmp / 'bench.sqlite3'}"
        return
    import asyncpg  # type: ignore[import-untyped]

    name = f"bench_login_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def started(
    cmd: list[str], code: Path, env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=code, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextmanager
def serve(code: Path, env: dict[str, str], port: int, shape: str, tmp: Path) -> Iterator[None]:
    """`serve`: one process that accepts, answers and sends (`make run`). `procfile`: the
    Procfile's web (uvicorn, WEB_ANSWERS=0, accepting only) beside one `answer` process."""
    if shape == "serve":
        cmds = [[sys.executable, "-m", "bot", "serve", "--with-worker", "--port", str(port)]]
    else:
        env = env | {"WEB_ANSWERS": "0"}
        cmds = [
            [sys.executable, "-m", "uvicorn", "--factory", "bot.web:app_from_env",
             "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
            [sys.executable, "-m", "bot", "answer"],
        ]  # fmt: skip
    with ExitStack() as stack:
        procs = [
            stack.enter_context(started(cmd, code, env, tmp / f"process-{n}.log"))
            for n, cmd in enumerate(cmds)
        ]
        deadline = time.monotonic() + 180
        while True:
            for n, proc in enumerate(procs):
                if proc.poll() is not None:
                    log = (tmp / f"process-{n}.log").read_text()[-2000:]
                    raise RuntimeError(f"{cmds[n][:4]} exited:\n{log}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the web process did not start")
            time.sleep(0.2)
        yield


async def webhooks(base: str, rate: float, seconds: float, first: int) -> list[float]:
    """LINE webhooks on a fixed schedule; the seconds each took to its 200."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=WEBHOOK_TIMEOUT_S) as client:

        async def one(n: int) -> None:
            body = line_body(n)
            headers = {"x-line-signature": sign(body), "content-type": "application/json"}
            start = time.perf_counter()
            try:
                res = await client.post("/webhooks/line", content=body, headers=headers)
            except httpx.TimeoutException:
                # Counted at the timeout: a lower bound, and LINE would have given up long ago.
                latencies.append(WEBHOOK_TIMEOUT_S)
                return
            latencies.append(time.perf_counter() - start)
            if res.status_code != 200:
                raise RuntimeError(f"webhook answered {res.status_code}")

        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(first + n)))
        await asyncio.gather(*tasks)
    return latencies


async def flood(base: str, clients: int, stop: asyncio.Event, spread: bool) -> Counter[int]:
    answers: Counter[int] = Counter()

    async def client(k: int) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=60) as browser:
            n = 0
            while not stop.is_set():
                n += 1
                headers = {"x-forwarded-for": f"10.{k}.{n // 250 % 250}.{n % 250 + 1}"}
                page = await browser.get("/admin/login", headers=headers if spread else {})
                token = _CSRF.search(page.text)
                if token is None:
                    answers[page.status_code] += 1
                    continue
                res = await browser.post(
                    "/admin/login",
                    data={"email": f"guess{k}.{n}@example.jp", "password": "wrong password",
                          "csrf_token": token.group(1)},
                    headers=headers if spread else {},
                )  # fmt: skip
                answers[res.status_code] += 1

    await asyncio.gather(*(client(k) for k in range(clients)))
    return answers


def figures(latencies: list[float]) -> dict[str, float | int]:
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    return {
        "n": len(ordered),
        "timed_out": sum(1 for x in ordered if x >= WEBHOOK_TIMEOUT_S),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(p95 * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def measure(base: str, args: argparse.Namespace) -> dict[str, Any]:
    quiet = await webhooks(base, args.rate, args.quiet_seconds, 0)
    stop = asyncio.Event()
    flooding = asyncio.create_task(flood(base, args.clients, stop, args.spread))
    start = time.perf_counter()
    during = await webhooks(base, args.rate, args.seconds, 100_000)
    stop.set()
    answers = await flooding
    elapsed = time.perf_counter() - start
    return {
        "quiet": figures(quiet),
        "flood": figures(during),
        "logins": dict(sorted(answers.items())),
        "logins_per_s": round(sum(answers.values()) / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--quiet-seconds", type=float, default=5)
    parser.add_argument("--rate", type=float, default=5, help="LINE webhooks a second")
    parser.add_argument("--spread", action="store_true", help="a client address per login")
    parser.add_argument("--pg", action="store_true", help="a fresh PostgreSQL database")
    parser.add_argument("--shape", choices=("serve", "procfile"), default="serve")
    parser.add_argument("--port", type=int, default=8711)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose bot to run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.shape == "procfile" and not args.pg:
        parser.error("--shape procfile runs several processes: it needs --pg")
    code = args.code.resolve()
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.pg, Path(tmp)) as url,
        FakePlatform().running() as fake,
    ):
        env = {
            **os.environ,
            "PYTHONPATH": str(code),
            "DATABASE_URL": url,
            "LINE_CHANNEL_SECRET": SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": "bench-line-token",
            "LINE_API_BASE_URL": fake.url,
            "CONSOLE_SECRET_KEY": "bench-console-secret-" + "x" * 32,
            # The flood posts over http to 127.0.0.1, so its CSRF cookie must come back.
            "CONSOLE_PLAIN_HTTP_ON_LOOPBACK": "1",
            "LOG_LEVEL": "WARNING",
        }
        env.pop("TELEGRAM_BOT_TOKEN", None)
        subprocess.run([sys.executable, "-m", "bot", "migrate"], env=env, cwd=code,
                       check=True, capture_output=True)  # fmt: skip
        subprocess.run(
            [sys.executable, "-m", "bot", "staff", "add", STAFF, "--role", "admin",
             "--password-stdin"],
            input=b"a bench password of some length\n", env=env, cwd=code, check=True,
            capture_output=True,
        )  # fmt: skip
        with serve(code, env, args.port, args.shape, Path(tmp)):
            result = asyncio.run(measure(f"http://127.0.0.1:{args.port}", args))
    result |= {"clients": args.clients, "rate": args.rate, "spread": args.spread,
               "shape": args.shape,
               "database": "postgresql" if args.pg else "sqlite", "code": str(code)}  # fmt: skip
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"code {code}  shape {args.shape}  database {result['database']}  spread {args.spread}"
        )
        for phase in ("quiet", "flood"):
            f = result[phase]
            print(f"  webhooks {phase:5}: n={f['n']} p50 {f['p50_ms']} ms  p95 {f['p95_ms']} ms"
                  f"  max {f['max_ms']} ms  timed out (>{WEBHOOK_TIMEOUT_S:.0f} s) "
                  f"{f['timed_out']}")  # fmt: skip
        print(f"  logins: {result['logins']} ({result['logins_per_s']}/s over the flood)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
