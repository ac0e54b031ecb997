"""localgovFAQ benchmark for faq.retrieval (Amagasaki city FAQ, 1,786 entries, 749 queries).

    python bench/localgovfaq.py /tmp/localgovfaq [--cache var/bench-cache] [--dense auto]

The data is not in the repo (no licence to redistribute). To get it:

    fetch github:mahiya/japanese-text-embedding-benchmark      # prints a git dir
    ../shared/benchmarks/localgovfaq/materialize.sh /tmp/localgovfaq <that git dir>

Reports SR@1, SR@5, MRR, nDCG@5 (AB labels: grade >= 1 relevant, grades as gains) and query
latency mean/p95 on one thread, for the lexical-only path and the hybrid, plus index build time
with a warm embedding cache. The first hybrid run embeds the 1,786 entries (minutes)."""

from __future__ import annotations

import os

# One core: set before numpy / the e5 engine load their thread pools.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from faq.retrieval import Document, Ranking, Retriever  # noqa: E402
from faq.retrieval.cascade import Cascade  # noqa: E402
from faq.retrieval.selfcal import calibrate_for  # noqa: E402

HOWTO = """localgovFAQ data not found in {dir}.
Get it (never commit it):
  1. fetch github:mahiya/japanese-text-embedding-benchmark
     (the search tool's fetch; it prints a git dir)
  2. bash ../shared/benchmarks/localgovfaq/materialize.sh /tmp/localgovfaq <that git dir>
then: python bench/localgovfaq.py /tmp/localgovfaq   (or set LOCALGOVFAQ_DIR)"""


def load(data: Path) -> tuple[list[Document], list[str], list[dict[str, int]]]:
    corpus = json.loads((data / "corpus.json").read_text(encoding="utf-8"))
    queries = json.loads((data / "queries.json").read_text(encoding="utf-8"))
    qrels = json.loads((data / "qrels.json").read_text(encoding="utf-8"))
    docs = []
    for fid in sorted(corpus, key=int):
        q, _, a = corpus[fid].partition("\nAnswer: ")
        docs.append(Document(fid, (q.removeprefix("Question: ").strip(),), (), a.strip(), ""))
    qids = sorted(queries, key=int)
    return docs, [queries[i] for i in qids], [qrels[i] for i in qids]


def evaluate(
    ranked: list[list[str]], rels: list[dict[str, int]], idx: range | None = None
) -> dict[str, float]:
    idx = idx or range(len(ranked))
    sr1 = sr5 = mrr = ndcg = 0.0
    for i in idx:
        r, rel = ranked[i], rels[i]
        first = next((k for k, d in enumerate(r) if rel.get(d, 0) >= 1), None)
        sr1 += first is not None and first < 1
        sr5 += first is not None and first < 5
        mrr += 1.0 / (first + 1) if first is not None else 0.0
        dcg = sum(rel.get(d, 0) / math.log2(k + 2) for k, d in enumerate(r[:5]))
        ideal = sorted(rel.values(), reverse=True)[:5]
        ndcg += dcg / sum(g / math.log2(k + 2) for k, g in enumerate(ideal))
    n = len(idx)
    return {"SR@1": sr1 / n, "SR@5": sr5 / n, "MRR": mrr / n, "nDCG@5": ndcg / n}


def run(
    name: str,
    r: Retriever,
    queries: list[str],
    rels: list[dict[str, int]],
    top: int,
    cascade: Cascade | None = None,
) -> dict[str, float]:
    """With `cascade`, each query goes through the staged decision the bot uses (e5 only
    when the first stage is unsure) and the share of queries that computed e5 is reported."""

    def rank(q: str) -> tuple[Ranking, bool]:
        if cascade is None:
            return r.rank(q, top), True
        d = cascade.decide(q, top)
        return d.ranking, "e5" in d.models

    for q in queries[:20]:  # warm caches and lazy allocations
        rank(q)
    ranked, lat, cpu, e5 = [], [], [], 0
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        out, used_e5 = rank(q)
        lat.append((time.perf_counter() - t0) * 1000)
        # CPU time of this thread: the cost of a query even when others load the machine
        cpu.append((time.thread_time() - c0) * 1000)
        ranked.append([s.id for s in out.ranked])
        e5 += used_e5
    m = evaluate(ranked, rels)
    even = evaluate(ranked, rels, range(0, len(queries), 2))
    odd = evaluate(ranked, rels, range(1, len(queries), 2))
    m.update(lat_mean=float(np.mean(lat)), lat_p95=float(np.percentile(lat, 95)))
    m.update(cpu_mean=float(np.mean(cpu)), cpu_p95=float(np.percentile(cpu, 95)))
    print(
        f"{name:34s} SR@1 {m['SR@1']:.3f}  SR@5 {m['SR@5']:.3f}  MRR {m['MRR']:.3f}  "
        f"nDCG@5 {m['nDCG@5']:.3f}  | latency mean {m['lat_mean']:.2f} ms p95 {m['lat_p95']:.2f} ms"
        f" (CPU {m['cpu_mean']:.2f} / {m['cpu_p95']:.2f} ms)"
        f"  | SR@1/SR@5 even {even['SR@1']:.3f}/{even['SR@5']:.3f}"
        f" odd {odd['SR@1']:.3f}/{odd['SR@5']:.3f}"
        + (f" | e5 on {e5 / len(queries):.1%} of queries" if cascade else ""),
        flush=True,
    )
    return m


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("data", nargs="?", default=os.environ.get("LOCALGOVFAQ_DIR"))
    ap.add_argument("--cache", default="var/bench-cache/localgovfaq", help="embedding cache dir")
    ap.add_argument(
        "--dense", default="auto", help='"auto", "e5", "use", "e5+use" (lexical always runs)'
    )
    ap.add_argument("--top", type=int, default=100, help="ranking depth used for MRR")
    args = ap.parse_args()
    data = Path(args.data) if args.data else None
    if data is None or not (data / "corpus.json").exists():
        print(HOWTO.format(dir=data or "(no directory given)"), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    docs, queries, rels = load(data)
    print(f"localgovFAQ: {len(docs)} entries, {len(queries)} queries; threads=1")

    t0 = time.perf_counter()
    lexical = Retriever.build(docs, dense="off")
    print(f"lexical index build: {time.perf_counter() - t0:.2f} s, peak RSS {rss_mb():.0f} MB")
    run("lexical only", lexical, queries, rels, args.top)

    cache = Path(args.cache)
    Retriever.build(docs, cache_dir=cache, dense=args.dense)  # fills the cache if cold
    t0 = time.perf_counter()
    hybrid = Retriever.build(docs, cache_dir=cache, dense=args.dense)
    build = time.perf_counter() - t0
    print(
        f"hybrid index build from cache: {build:.2f} s "
        f"(dense part {hybrid.dense_seconds:.2f} s), models: {hybrid.dense_models}"
    )
    if hybrid.dense_models:
        run(f"hybrid ({args.dense}, every model)", hybrid, queries, rels, args.top)
        # as FaqMatcher.build does: the decision calibrated on this KB (selfcal.py), timed
        # without its on-disk copy, then read back as a restart would
        for f in cache.glob("calibration-*.json"):
            f.unlink()
        t0 = time.perf_counter()
        calibration = calibrate_for(hybrid)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        calibrate_for(hybrid)
        print(
            f"calibration on this KB: {first:.2f} s, from its cache {time.perf_counter() - t0:.2f}"
            f" s; probes {dict(calibration.probes)}; {calibration.report}"
        )
        staged = Cascade(hybrid, calibration=calibration)
        if len(staged.stages) > 1:
            run("cascade (the bot's default)", hybrid, queries, rels, args.top, staged)
            shipped = Cascade(hybrid)  # the shipped models, as fitted on our own KB
            run("cascade, uncalibrated (before)", hybrid, queries, rels, args.top, shipped)
    print(f"peak RSS of this process: {rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
