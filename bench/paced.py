"""Open-loop webhook load: signed events at a fixed rate, replies read from the fake platform.

usage: .venv/bin/python bench/paced.py line|telegram --url http://127.0.0.1:PORT --secret S
           --record RECORD.jsonl --rate 100 --seconds 30 [--metrics URL] [--json]

The shared load generator (../shared/webhook-bench/loadgen.py) keeps C requests in flight,
so a slow bot is sent less; a platform does not wait: people write when they write. This
sends event i at t0 + i/rate whatever the bot does (at most --in-flight POSTs open; past that
the sender falls behind and says so), signing and shaping each event with loadgen's own
`Line` / `Telegram` classes (imported from the shared path, never copied), then waits for
the replies in the shared fakeplatform.py's record like loadgen does. With --metrics it
samples the bot's /metrics every second (inbox depth, oldest unanswered event) until the
backlog is gone: the burst benchmark. Loopback only, bounded by --max-seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import sys
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp

HARNESS = Path(__file__).resolve().parents[2] / "shared" / "webhook-bench"
MAX_EVENTS = 100_000
DEPTH = re.compile(r'^iju_inbox_pending\{channel="(\w+)",status="(\w+)"\} ([0-9.e+]+)$', re.M)
OLDEST = re.compile(r'^iju_inbox_oldest_seconds\{channel="(\w+)"\} ([0-9.e+]+)$', re.M)


def loadgen() -> ModuleType:
    """The shared harness's loadgen.py as a module: its event makers, matcher, percentiles."""
    spec = importlib.util.spec_from_file_location("loadgen", HARNESS / "loadgen.py")
    if spec is None or spec.loader is None:
        sys.exit(f"paced: no loadgen.py at {HARNESS}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Record:
    """Reads the fake platform's record as it grows (only the new bytes each time)."""

    def __init__(self, path: Path, match: Any) -> None:
        self.path, self.match = path, match
        self.offset = path.stat().st_size if path.exists() else 0
        self.rest = b""
        self.sends: list[tuple[list[str], float]] = []  # (keys, arrival time)

    def poll(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        lines = (self.rest + data).split(b"\n")
        self.rest = lines.pop()  # a line being written: completed by the next read
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            keys = self.match(rec)
            if keys is not None:
                self.sends.append((keys, float(rec.get("t", 0.0))))


async def scrape(session: aiohttp.ClientSession, url: str) -> dict[str, float] | None:
    try:
        async with session.get(url) as res:
            if res.status != 200:  # the echo bots have no /metrics
                return None
            body = await res.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    depth = sum(float(m.group(3)) for m in DEPTH.finditer(body))
    oldest = max((float(m.group(2)) for m in OLDEST.finditer(body)), default=0.0)
    return {"depth": depth, "oldest_s": oldest}


async def run(a: argparse.Namespace) -> dict[str, Any]:
    lg = loadgen()
    lg.loopback_only(a.url)
    gen = (lg.Line if a.channel == "line" else lg.Telegram)(a.secret, uuid.uuid4().hex[:24])
    url = a.url.rstrip("/") + gen.path
    n = min(int(a.rate * a.seconds), MAX_EVENTS)
    record = Record(Path(a.record), gen.match) if a.record else None
    keys: dict[str, int] = {}
    sent_at: dict[int, float] = {}
    results: list[tuple[float, int | str]] = []  # (latency, status)
    samples: list[dict[str, float]] = []
    gate = asyncio.Semaphore(a.in_flight)
    behind = 0.0
    timeout = aiohttp.ClientTimeout(total=a.timeout)
    conn = aiohttp.TCPConnector(limit=a.in_flight)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def post(i: int) -> None:
            try:
                body, headers, ids = gen.make(i)  # made now: timestamps as a platform's
                for k in ids:
                    keys[k] = i
                sent_at[i] = time.time()
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as res:
                        await res.read()
                        status: int | str = res.status
                except Exception as exc:  # counted as an error, kind kept
                    status = type(exc).__name__
                results.append((time.perf_counter() - t0, status))
            finally:
                gate.release()

        async def sample_until(done: asyncio.Event) -> None:
            start = time.monotonic()
            while not done.is_set():
                got = await scrape(session, a.metrics)
                if got is not None:
                    samples.append({"t": round(time.monotonic() - start, 1), **got})
                await asyncio.sleep(1.0)

        sampling = asyncio.Event()
        sampler = asyncio.create_task(sample_until(sampling)) if a.metrics else None
        tasks = []
        start = time.monotonic()
        deadline = start + a.max_seconds
        for i in range(n):
            due = start + i / a.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await gate.acquire()
            behind = max(behind, time.monotonic() - due)
            if time.monotonic() > deadline:
                gate.release()
                break
            tasks.append(asyncio.create_task(post(i)))
        send_s = time.monotonic() - start
        await asyncio.gather(*tasks)
        wall = time.monotonic() - start
        # Replies: until all arrived, or none new for --wait-seconds.
        first: dict[int, float] = {}
        dup = 0
        last_count, last_change = -1, time.monotonic()
        while record is not None:
            record.poll()
            first, dup = {}, 0
            for ks, t in record.sends:
                i = next((keys[k] for k in ks if k in keys), None)
                if i is None:
                    continue
                if i in first:
                    dup += 1
                else:
                    first[i] = t
            if len(first) >= len(sent_at):
                break
            if len(first) != last_count:
                last_count, last_change = len(first), time.monotonic()
            elif time.monotonic() - last_change > a.wait_seconds:
                break
            await asyncio.sleep(0.25)
        if sampler is not None:
            got = await scrape(session, a.metrics)  # the depth once the replies are in
            if got is not None:
                samples.append({"t": round(time.monotonic() - start, 1), **got})
            sampling.set()
            await sampler
    ok = [lat for lat, status in results if status == 200]
    errors: dict[str, int] = {}
    for _, status in results:
        if status != 200:
            errors[str(status)] = errors.get(str(status), 0) + 1
    delays = [first[i] - sent_at[i] for i in first]
    last_reply = max(first.values(), default=0.0)
    out: dict[str, Any] = {
        "channel": a.channel,
        "mode": "paced",
        "rate": a.rate,
        "n": n,
        "sent": len(results),
        "ok": len(ok),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "send_s": round(send_s, 2),
        "wall_s": round(wall, 2),
        "events_per_s": round(len(ok) / wall, 1) if wall else None,
        "sender_behind_max_s": round(behind, 2),
        "http_p50_ms": round(lg.pct(ok, 50) * 1000, 1),
        "http_p99_ms": round(lg.pct(ok, 99) * 1000, 1),
        "replies": len(first),
        "replies_expected": len(sent_at),
        "duplicate_replies": dup,
        "reply_p50_ms": round(lg.pct(delays, 50) * 1000, 1),
        "reply_p99_ms": round(lg.pct(delays, 99) * 1000, 1),
        "replies_per_s": round(len(first) / max(last_reply - min(sent_at.values()), 1e-9), 1)
        if first
        else 0.0,
        "drain_s": round(last_reply - (min(sent_at.values()) + wall), 2) if first else None,
    }
    if samples:
        out["depth_max"] = max(s["depth"] for s in samples)
        out["oldest_max_s"] = max(s["oldest_s"] for s in samples)
        out["depth_last"] = samples[-1]["depth"]
        out["depth_samples"] = samples
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("channel", choices=["line", "telegram"])
    ap.add_argument("--url", required=True, help="the bot's base URL (loopback only)")
    ap.add_argument("--secret", required=True)
    ap.add_argument("--record", help="the fake platform's RECORD.jsonl")
    ap.add_argument("--rate", type=float, default=100.0, help="events per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="how long to send")
    ap.add_argument("--in-flight", type=int, default=1000, help="most POSTs open at once")
    ap.add_argument("--metrics", help="the bot's /metrics URL, sampled every second")
    ap.add_argument("--wait-seconds", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if not (0 < a.rate <= 5000 and 0 < a.seconds <= 600 and 1 <= a.in_flight <= 2000):
        sys.exit("paced: need 0 < rate <= 5000, 0 < seconds <= 600, 1 <= in-flight <= 2000")
    out = asyncio.run(run(a))
    if a.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(json.dumps({k: v for k, v in out.items() if k != "depth_samples"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
