"""Score `python -m bot faq match` on a labelled query set (default: bench/data/faq_queries.jsonl).

    .venv/bin/python bench/faq_eval.py [--kb faq] [--queries bench/data/faq_queries.jsonl] [--json]
    .venv/bin/python bench/faq_eval.py --latency [--dense off,use,e5+use,auto]

The second form runs the matcher in this process on ONE thread for each dense configuration
("auto" is the cascade: e5 only when lexical + USE is unsure) and adds, per configuration,
latency mean / p95 per query, the share of queries that computed e5, and a few typical chat
messages (with the load generator's " (load 123)" suffix).

Metrics, overall and per kind:
  P@1     in-scope queries answered outright with the right entry
  Hit@5   in-scope queries whose right entry is among the top 5
  MRR@5   mean reciprocal rank of the right entry within the top 5
  reject  out-of-scope queries (id null) NOT answered outright
  wrong   queries answered outright with a wrong entry (over all queries)
It drives the real command through its stdin/stdout protocol, so it measures what staff see.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# What people type in the chat, and what the webhook load generator sends (a number appended).
CHAT_PROBES = (
    "空き家バンクについて教えて",
    "コワーキングスペースはありますか",
    "空き家バンクについて教えて (load 123)",
    "コワーキングスペースはありますか (load 4567)",
)


def run_inprocess(kb: str, queries: list[str], dense: str) -> tuple[list[dict[str, Any]], Any]:
    """Like run_matcher, in this process, plus latency and which models each query used."""
    # One core: set before numpy and the e5 engine load their thread pools (nothing above
    # this line imports them).
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from faq.kb import load_kb
    from faq.matcher import FaqMatcher

    matcher = FaqMatcher.build(
        load_kb(ROOT / kb),
        dense=dense,
        cache_dir=ROOT / "var/faq-cache",
        synonyms=ROOT / "faq/lexicon/synonyms.toml",
    )
    for q in queries[:20]:  # warm-up: lazy allocations, first-call paths
        matcher.match(q)
    records, lat, cpu = [], [], []
    for q in queries:
        line = q.replace("\r", " ").replace("\n", " ")
        t0, c0 = time.perf_counter(), time.thread_time()
        res = matcher.match(line)
        lat.append((time.perf_counter() - t0) * 1000)
        # CPU time of this thread: what a query costs when others load the machine
        cpu.append((time.thread_time() - c0) * 1000)
        records.append(
            {
                "answered": res.answered,
                "matches": [{"id": m.entry.id} for m in res.matches],
                "e5": "e5" in res.models,
                "band": str(res.band),
            }
        )
    probes = []
    for q in CHAT_PROBES:
        t0 = time.perf_counter()
        res = matcher.match(q)
        ms = (time.perf_counter() - t0) * 1000
        top = res.best.entry.id if res.best else None
        probes.append(f"  {q!r}: {res.band} {top} e5={'e5' in res.models} {ms:.1f} ms")
    stats = {
        "models": matcher.retriever.models,
        "mean": float(np.mean(lat)),
        "p95": float(np.percentile(lat, 95)),
        "cpu_mean": float(np.mean(cpu)),
        "cpu_p95": float(np.percentile(cpu, 95)),
        "e5_share": sum(r["e5"] for r in records) / len(records),
        "probes": probes,
    }
    return records, stats


def run_matcher(kb: str, queries: list[str], top: int) -> list[dict[str, Any]]:
    # One line per query: embedded newlines in "long" queries are folded to spaces, as a
    # chat channel would pass the whole message as one question.
    lines = [q.replace("\r", " ").replace("\n", " ") for q in queries]
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "faq", "match", "--kb", kb, "--top", str(top)],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    if len(records) != len(queries):
        raise SystemExit(f"protocol broken: {len(queries)} queries, {len(records)} answers")
    return records


def score(rows: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for row, rec in zip(rows, records, strict=True):
        groups[row["kind"]].append((row, rec))
        groups["ALL"].append((row, rec))
    table: dict[str, dict[str, float]] = {}
    for kind, pairs in groups.items():
        inscope = [(r, m) for r, m in pairs if r["id"] is not None]
        oos = [(r, m) for r, m in pairs if r["id"] is None]
        p1 = hit5 = mrr = 0.0
        for row, rec in inscope:
            ids = [m["id"] for m in rec["matches"][:5]]
            if rec["answered"] and ids and ids[0] == row["id"]:
                p1 += 1
            if row["id"] in ids:
                hit5 += 1
                mrr += 1 / (ids.index(row["id"]) + 1)
        wrong = sum(
            1
            for row, rec in pairs
            if rec["answered"] and rec["matches"] and rec["matches"][0]["id"] != row["id"]
        )
        rejected = sum(1 for _row, rec in oos if not rec["answered"])
        n_in = len(inscope) or 1
        table[kind] = {
            "n": len(pairs),
            "P@1": p1 / n_in if inscope else float("nan"),
            "Hit@5": hit5 / n_in if inscope else float("nan"),
            "MRR@5": mrr / n_in if inscope else float("nan"),
            "reject": rejected / len(oos) if oos else float("nan"),
            "wrong": wrong / len(pairs),
        }
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", default="faq")
    parser.add_argument("--queries", default=str(ROOT / "bench/data/faq_queries.jsonl"))
    parser.add_argument("--json", action="store_true", help="print the table as JSON")
    parser.add_argument("--latency", action="store_true", help="in-process, one thread, timed")
    parser.add_argument("--dense", default="off,use,e5+use,auto", help="with --latency")
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.queries).read_text("utf-8").splitlines() if line]
    if args.latency:
        for dense in args.dense.split(","):
            records, st = run_inprocess(args.kb, [r["q"] for r in rows], dense)
            t = score(rows, records)["ALL"]
            # what the middle band gives the in-scope questions not answered outright
            held = [
                (row, rec)
                for row, rec in zip(rows, records, strict=True)
                if row["id"] is not None and not rec["answered"]
            ]
            offered = sum(
                rec["band"] == "suggest" and row["id"] in [m["id"] for m in rec["matches"][:3]]
                for row, rec in held
            )
            unknown = sum(rec["band"] == "unknown" for _, rec in held)
            print(
                f"dense={dense:7s} models={'+'.join(st['models']) or 'lexical':7s} "
                f"P@1 {t['P@1']:.3f} Hit@5 {t['Hit@5']:.3f} reject {t['reject']:.3f} "
                f"wrong {t['wrong']:.3f} | e5 on {st['e5_share']:.1%} of queries | "
                f"latency mean {st['mean']:.2f} ms p95 {st['p95']:.2f} ms | CPU mean "
                f"{st['cpu_mean']:.2f} ms p95 {st['cpu_p95']:.2f} ms",
                flush=True,
            )
            print(
                f"  in scope, not answered: {len(held)}; offered the right entry among 3 "
                f"choices: {offered}; told 'don't know': {unknown}",
                flush=True,
            )
            print("\n".join(st["probes"]), flush=True)
        return 0
    started = time.perf_counter()
    records = run_matcher(args.kb, [r["q"] for r in rows], top=5)
    elapsed = time.perf_counter() - started
    table = score(rows, records)
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    order = ["ALL", *sorted(k for k in table if k != "ALL")]
    print(f"{len(rows)} queries, {elapsed:.1f} s including start-up\n")
    print("| kind | n | P@1 | Hit@5 | MRR@5 | OOS rejected | wrong answers |")
    print("|---|---|---|---|---|---|---|")
    for kind in order:
        t = table[kind]
        cells = [
            f"{t[k]:.3f}" if t[k] == t[k] else "—"
            for k in ("P@1", "Hit@5", "MRR@5", "reject", "wrong")
        ]
        print(f"| {kind} | {int(t['n'])} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
