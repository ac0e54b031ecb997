"""Score `python -m bot faq match` on a labelled query set (default: bench/data/faq_queries.jsonl).

    .venv/bin/python bench/faq_eval.py [--kb faq] [--queries bench/data/faq_queries.jsonl] [--json]

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
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


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
    args = parser.parse_args()
    rows = [json.loads(line) for line in Path(args.queries).read_text("utf-8").splitlines() if line]
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
