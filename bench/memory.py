"""Memory of one web process: what the libraries, the KB, the analyser and each model cost.

usage: .venv/bin/python bench/memory.py [--dense off,use,auto] [--web] [--json]

Each step runs in a fresh Python process (so one step's memory never hides in another's)
and reads its own resident set (VmRSS) from /proc after:
  python      the interpreter alone;
  libraries   importing the web app with every library it uses (Starlette, SQLAlchemy,
              line-bot-sdk, python-telegram-bot, ...);
  kb          the FAQ files loaded;
  matcher     the matcher built with [faq] dense = off (the analyser: fugashi + UniDic,
              the lexical index), use (+ the USE model), auto (every installed model: e5 + USE);
              the difference between two is what a model costs.
With --web it also starts the Procfile's web process (one uvicorn worker, default config, a
fresh PostgreSQL database, answering its webhooks itself: the heaviest web process) and
reads its peak resident set (VmHWM) after 300 LINE webhooks from the shared loadgen.py:
the figure the 300 MB target is about.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

STEP = r"""
import json, sys
from pathlib import Path

def rss():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
out = {"python": rss()}
import bot.web  # noqa: F401  every library the web process imports
from bot.config import load_settings
from bot.runtime import matcher_builder
from faq.kb import load_kb
out["libraries"] = rss()
settings = load_settings("config.toml", environ={})
kb = load_kb(settings.faq_dir)
out["kb"] = rss()
dense = sys.argv[1]
settings = settings.model_copy(update={"faq": settings.faq.model_copy(update={"dense": dense})})
matcher = matcher_builder(settings)(kb)
matcher.match("空き家バンクについて教えて")  # lazily loaded parts load now
out["matcher"] = rss()
print(json.dumps(out))
"""


def step(dense: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", STEP, dense],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        sys.exit(f"memory: step {dense} failed:\n{done.stderr[-2000:]}")
    values: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: round(v, 1) for k, v in values.items()}


def web_process() -> dict[str, Any]:
    import webhooks  # bench/webhooks.py: processes, fresh database, the shared harness

    args = argparse.Namespace(
        admin_url="postgresql+asyncpg://postgres@127.0.0.1/postgres",
        log_level="INFO",
        mode="closed",
        n=300,
        c=50,
        wait_seconds=60.0,
    )
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        result = webhooks.measure("line", "1", args, Path(tmp), "auto")
    [peaks] = result["rss_peak_mb"].values()
    return {"web_peak_mb": max(peaks.values()), "events": result["ok"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dense", default="off,use,auto")
    ap.add_argument("--web", action="store_true", help="also measure a running web process")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = {dense: step(dense) for dense in args.dense.split(",")}
    report: dict[str, Any] = {"steps_mb": rows}
    first = next(iter(rows.values()))
    costs = {
        "python": first["python"],
        "libraries": round(first["libraries"] - first["python"], 1),
        "kb": round(first["kb"] - first["libraries"], 1),
    }
    for dense, row in rows.items():
        costs[f"matcher[{dense}]"] = round(row["matcher"] - row["kb"], 1)
    report["costs_mb"] = costs
    if args.web:
        report.update(web_process())
    if args.json:
        print(json.dumps(report))
        return 0
    for dense, row in rows.items():
        print(f"dense={dense:5} " + "  ".join(f"{k} {v:.0f} MB" for k, v in row.items()))
    print("cost of each part: " + ", ".join(f"{k} {v:.0f} MB" for k, v in costs.items()))
    if args.web:
        print(
            f"web process (uvicorn, 1 worker, dense=auto): peak RSS {report['web_peak_mb']:.0f} "
            f"MB after {report['events']} webhooks"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
