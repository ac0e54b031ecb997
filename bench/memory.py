"""Memory of one web process: what the libraries, the KB, the analyser and each model cost.

usage: .venv/bin/python bench/memory.py [--dense off,use,auto] [--queries 200] [--web] [--json]
       .venv/bin/python bench/memory.py --localgovfaq /tmp/localgovfaq [--queries 200]

Each configuration runs in a fresh Python process (so one step's memory never hides in
another's) and reads its own /proc/self/status after each step:
  python      the interpreter alone;
  libraries   importing the web app with every library it uses (Starlette, SQLAlchemy,
              line-bot-sdk, python-telegram-bot, ...);
  kb          the FAQ files loaded;
  matcher     the matcher built with [faq] dense = off (the analyser: fugashi + UniDic,
              the lexical index), use (+ the USE model), auto (every installed model: e5 + USE),
              and one question answered; the difference between two is what a model costs;
  answering   after answering the first --queries questions of bench/data/faq_queries.jsonl
              (every kind, so "auto" computes e5 for the uncertain ones as the bot does).
RSS is split into private memory (RssAnon: the heap, the arrays) and file-backed pages
(RssFile: libraries, the UniDic dictionary and the model files that are memory-mapped; clean
pages the kernel can drop and that every worker shares). The largest file mappings after
answering are listed, and the process's peak (VmHWM).
With --web it also starts the Procfile's web process (one uvicorn worker, default config, a
fresh PostgreSQL database, answering its webhooks itself: the heaviest web process) and
reads its peak resident set (VmHWM) after 300 LINE webhooks from the shared loadgen.py:
the figure the 300 MB target is about.
With --localgovfaq DIR the steps are those of faq.retrieval alone (numpy and the retrieval
code instead of the web app's libraries) over localgovFAQ's 1,786 entries, answering its
first --queries queries through the cascade.
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
import collections, json, sys
from pathlib import Path

def status():
    d = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            d[key] = int(value.split()[0]) / 1024
    return d

def rss():
    return status()["VmRSS"]

def file_mappings():
    sizes, name = collections.Counter(), None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if not line[0].isupper() or not parts[0].endswith(":"):
            name = parts[5] if len(parts) > 5 and parts[5].startswith("/") else None
        elif parts[0] == "Rss:" and name:
            sizes[name] += int(parts[1]) / 1024
    return {k: round(v, 1) for k, v in sizes.most_common(6)}

out = {"python": rss()}
dense, n, lgf = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if not lgf:  # the web process: the bot's libraries, its KB, its matcher
    import bot.web  # noqa: F401  every library the web process imports
    from bot.config import load_settings
    from bot.runtime import matcher_builder
    from faq.kb import load_kb
    out["libraries"] = rss()
    settings = load_settings("config.toml", environ={})
    kb = load_kb(settings.faq_dir)
    out["kb"] = rss()
    settings = settings.model_copy(update={"faq": settings.faq.model_copy(update={"dense": dense})})
    matcher = matcher_builder(settings)(kb)
    ask = lambda q: matcher.match(q).models
    queries = [json.loads(line)["q"] for line in open("bench/data/faq_queries.jsonl")][:n]
else:  # faq.retrieval alone over localgovFAQ's 1,786 entries, the cascade as the bot runs it
    sys.path.insert(0, "bench")
    import localgovfaq
    from faq.retrieval.cascade import Cascade
    out["libraries"] = rss()
    docs, queries, _ = localgovfaq.load(Path(lgf))
    queries = queries[:n]
    out["kb"] = rss()
    cache = Path("var/bench-cache/localgovfaq")
    cascade = Cascade(localgovfaq.Retriever.build(docs, cache_dir=cache, dense=dense))
    ask = lambda q: cascade.decide(q).models
ask("空き家バンクについて教えて")  # lazily loaded parts load now
out["matcher"] = rss()
e5 = 0
for q in queries:
    e5 += "e5" in ask(q)
out["answering"] = rss()
st = status()
out.update(anon=st["RssAnon"], file=st["RssFile"], peak=st["VmHWM"])
print(json.dumps({"mb": out, "files": file_mappings(), "queries": len(queries), "e5": e5}))
"""


def step(dense: str, queries: int, localgovfaq: str = "") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", STEP, dense, str(queries), localgovfaq],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        sys.exit(f"memory: step {dense} failed:\n{done.stderr[-2000:]}")
    values: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    values["mb"] = {k: round(v, 1) for k, v in values["mb"].items()}
    return values


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
    ap.add_argument("--queries", type=int, default=200, help="questions answered (answering)")
    ap.add_argument(
        "--localgovfaq",
        metavar="DIR",
        default="",
        help="measure faq.retrieval alone over localgovFAQ instead of the web process "
        "(embeddings from var/bench-cache/localgovfaq; see bench/localgovfaq.py)",
    )
    ap.add_argument("--web", action="store_true", help="also measure a running web process")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    runs = {dense: step(dense, args.queries, args.localgovfaq) for dense in args.dense.split(",")}
    rows = {dense: run["mb"] for dense, run in runs.items()}
    report: dict[str, Any] = {"steps_mb": rows, "file_mappings_mb": {}}
    first = next(iter(rows.values()))
    costs = {
        "python": first["python"],
        "libraries": round(first["libraries"] - first["python"], 1),
        "kb": round(first["kb"] - first["libraries"], 1),
    }
    for dense, row in rows.items():
        costs[f"matcher[{dense}]"] = round(row["matcher"] - row["kb"], 1)
    report["costs_mb"] = costs
    for dense, run in runs.items():
        report["file_mappings_mb"][dense] = run["files"]
        report.setdefault("e5_queries", {})[dense] = f"{run['e5']}/{run['queries']}"
    if args.web:
        report.update(web_process())
    if args.json:
        print(json.dumps(report))
        return 0
    steps = ("python", "libraries", "kb", "matcher", "answering")
    what = f"localgovFAQ ({args.localgovfaq})" if args.localgovfaq else "the web process"
    print(f"RSS in MB after each step, {what}; answering = {args.queries} questions answered")
    print(f"{'dense':6}" + "".join(f"{k:>11}" for k in (*steps, "private", "file", "peak")))
    for dense, row in rows.items():
        cells = [row[k] for k in (*steps, "anon", "file", "peak")]
        print(f"{dense:6}" + "".join(f"{v:11.0f}" for v in cells))
    print("cost of each part: " + ", ".join(f"{k} {v:.0f} MB" for k, v in costs.items()))
    for dense, run in runs.items():
        files = ", ".join(f"{Path(k).name} {v:.0f}" for k, v in run["files"].items())
        print(f"largest file mappings, dense={dense} (MB): {files}; e5 on {run['e5']} questions")
    if args.web:
        print(
            f"web process (uvicorn, 1 worker, dense=auto): peak RSS {report['web_peak_mb']:.0f} "
            f"MB after {report['events']} webhooks"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
