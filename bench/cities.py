"""Measure the FAQ answer decision across cities: the sample city and one it was never tuned on.

    .venv/bin/python bench/cities.py [--cities a,b] [--dense auto] [--json]

City A is the project's own knowledge base (`faq/`, queries bench/data/faq_queries.jsonl);
city B is 潮見市 (bench/data/cities/shiomi/, 2 ja + 1 en questions per entry like a typical
city file, written independently of faq/). Nothing may be fitted on city B: it is the test
of whether the decision transfers. `--dense` is auto (default), off, use or e5+use; several,
comma-separated, run one after another.

The matcher runs in this process on ONE thread, built as the bot builds it for a knowledge
base (FaqMatcher.build on load_kb, the embedding cache var/faq-cache, or for city B
var/faq-cache/cities/shiomi so as not to evict the bot's, the project's synonyms), and is
read only through its public result (band, matches, answered), so whatever the decision does
at load (calibrating itself on the KB) is what is measured, with the load time.

Per city and per kind (in scope = queries whose id is not null):
  P@1        answered outright with the right entry / in scope ("answered-and-right")
  top-1      the first match is the right entry, whatever the band / in scope
  one tap    answered right, or band "suggest" with the right entry among matches[:3]
             (the 「もしかして」 choices) / in scope
  declined   out-of-scope queries NOT answered outright / out of scope
  wrong      answered outright with a wrong entry / ALL queries
  CPU ms     this thread's CPU time per match(): mean and p95 over the city's queries
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = ROOT / "var/faq-cache"
SYNONYMS = ROOT / "faq/lexicon/synonyms.toml"
DENSE_CHOICES = ("auto", "off", "use", "e5+use")
# Rows in this order; kinds a query set lacks are left out.
KIND_ORDER = ("paraphrase", "casual", "keyword", "typo", "kana", "long", "english", "oos")
WARM_UP = 20  # queries matched untimed first: lazy allocations, first-call paths
ONE_TAP = 3  # the 「もしかして」 band offers matches[:3]


@dataclass(frozen=True)
class City:
    key: str
    name: str
    kb: Path
    queries: Path
    # The embedding cache keeps one file per model, pruned to the KB last loaded: if city B
    # shared var/faq-cache it would evict the bot's own entries (and every run would embed
    # both cities again), so each other city has its own folder beneath it.
    cache: Path = CACHE_DIR


CITIES = {
    "a": City("a", "A 小諸 (faq/)", ROOT / "faq", ROOT / "bench/data/faq_queries.jsonl"),
    "b": City(
        "b",
        "B 潮見 (unseen)",
        ROOT / "bench/data/cities/shiomi",
        ROOT / "bench/data/cities/shiomi/queries.jsonl",
        CACHE_DIR / "cities/shiomi",
    ),
}


@dataclass(frozen=True)
class Outcome:
    """What the matcher decided for one query, reduced to what the metrics need."""

    band: str  # "answer" | "suggest" | "unknown"
    answered: bool
    ids: tuple[str, ...]  # matches' entry ids, best first
    cpu_ms: float
    confidence: float = 0.0


def code_state() -> str:
    """Which matcher was measured: the commit, and whether faq/ had uncommitted edits (others
    work in this tree; a figure from a half-edited matcher must say so)."""
    git = ["git", "-C", str(ROOT)]
    try:
        head = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "faq", "bot/runtime.py"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}, faq/ uncommitted edits: {'yes' if dirty else 'none'}"


def one_thread() -> None:
    # Set before numpy and the e5 engine create their thread pools (nothing imported at
    # module level loads them), so the CPU figures are one core's, as in bench/faq_eval.py.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def read_queries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def run_city(city: City, rows: Sequence[dict[str, Any]], dense: str) -> tuple[list[Outcome], float]:
    """Build the matcher for the city's KB (timed: it includes any calibration at load) and
    match every query; returns the outcomes and the load time in seconds."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from faq.kb import load_kb
    from faq.matcher import FaqMatcher

    started = time.perf_counter()
    matcher = FaqMatcher.build(
        load_kb(city.kb), dense=dense, cache_dir=city.cache, synonyms=SYNONYMS
    )
    load_s = time.perf_counter() - started
    # One message per query: a chat channel passes a multi-line message as one question.
    texts = [row["q"].replace("\r", " ").replace("\n", " ") for row in rows]
    for text in texts[:WARM_UP]:
        matcher.match(text)
    outcomes = []
    for text in texts:
        c0 = time.thread_time()
        res = matcher.match(text, top=5)
        cpu_ms = (time.thread_time() - c0) * 1000
        outcomes.append(
            Outcome(
                band=str(res.band),
                answered=res.answered,
                ids=tuple(m.entry.id for m in res.matches),
                cpu_ms=cpu_ms,
                confidence=res.confidence,
            )
        )
    return outcomes, load_s


def ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def score(
    rows: Sequence[dict[str, Any]], outcomes: Sequence[Outcome]
) -> dict[str, dict[str, float]]:
    from intents.fallback import NEARBY_FLOOR  # after measure() put the repo on sys.path

    groups: dict[str, list[tuple[str | None, Outcome]]] = defaultdict(list)
    for row, out in zip(rows, outcomes, strict=True):
        groups["ALL"].append((row["id"], out))
        groups[row["kind"]].append((row["id"], out))
    table: dict[str, dict[str, float]] = {}
    for kind, pairs in groups.items():
        inscope = [(want, out) for want, out in pairs if want is not None]
        oos = [out for want, out in pairs if want is None]
        right = sum(out.answered and out.ids[0] == want for want, out in inscope)
        top1 = sum(bool(out.ids) and out.ids[0] == want for want, out in inscope)
        tap = sum(
            (out.answered and out.ids[0] == want)
            or (out.band == "suggest" and want in out.ids[:ONE_TAP])
            for want, out in inscope
        )
        # What the bot shows: also the closest entries it lists under its "don't know"
        # (intents/fallback.py, above NEARBY_FLOOR).
        shown = sum(
            (out.answered and out.ids[0] == want)
            or (out.band != "answer" and want in out.ids[:ONE_TAP] and (
                out.band == "suggest" or out.confidence >= NEARBY_FLOOR
            ))
            for want, out in inscope
        )  # fmt: skip
        wrong = sum(out.answered and out.ids[0] != want for want, out in pairs)
        declined = sum(not out.answered for out in oos)
        table[kind] = {
            "n": len(pairs),
            "in_scope": len(inscope),
            "oos": len(oos),
            "p_at_1": ratio(right, len(inscope)),
            "top1": ratio(top1, len(inscope)),
            "one_tap": ratio(tap, len(inscope)),
            "shown": ratio(shown, len(inscope)),
            "declined": ratio(declined, len(oos)),
            "wrong": ratio(wrong, len(pairs)),
        }
    return table


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * pct / 100  # linear interpolation, as numpy's default
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measure(city: City, dense: str) -> dict[str, Any]:
    rows = read_queries(city.queries)
    outcomes, load_s = run_city(city, rows, dense)
    cpu = [o.cpu_ms for o in outcomes]
    return {
        "city": city.name,
        "kb": str(city.kb.relative_to(ROOT)),
        "dense": dense,
        "queries": len(rows),
        "load_s": load_s,
        "cpu_mean_ms": sum(cpu) / len(cpu),
        "cpu_p95_ms": percentile(cpu, 95),
        "kinds": score(rows, outcomes),
    }


def without_nan(value: Any) -> Any:
    """NaN (a metric with nothing to count, e.g. P@1 of the oos kind) as null: valid JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_nan(v) for v in value]
    return value


def cell(value: float) -> str:
    return "—" if math.isnan(value) else f"{value:.3f}"


def markdown(results: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| city | dense | kind | n | P@1 (answered right) | top-1 right | right within one tap "
        "| one tap as shown ¹ | OOS declined | wrong answers |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        kinds = res["kinds"]
        order = [
            "ALL",
            *(k for k in KIND_ORDER if k in kinds),
            *sorted(set(kinds) - {"ALL", *KIND_ORDER}),
        ]
        for kind in order:
            t = kinds[kind]
            metrics = (t[k] for k in ("p_at_1", "top1", "one_tap", "shown", "declined", "wrong"))
            label = f"**{kind}**" if kind == "ALL" else kind
            lines.append(
                f"| {res['city']} | {res['dense']} | {label} | {int(t['n'])} | "
                + " | ".join(cell(m) for m in metrics)
                + " |"
            )
    lines += [
        "",
        '¹ also the closest entries the bot lists under its "don\'t know" (intents/fallback.py)',
        "",
        "| city | dense | queries | KB load incl. calibration, s (first row: + models) "
        "| CPU ms / query mean | p95 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['city']} | {r['dense']} | {r['queries']} | {r['load_s']:.1f} | "
        f"{r['cpu_mean_ms']:.2f} | {r['cpu_p95_ms']:.2f} |"
        for r in results
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cities", default="a,b", help="comma-separated: " + ",".join(CITIES))
    parser.add_argument(
        "--dense", default="auto", help="comma-separated: " + ", ".join(DENSE_CHOICES)
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    keys = [k.strip() for k in args.cities.split(",") if k.strip()]
    denses = [d.strip() for d in args.dense.split(",") if d.strip()]
    if unknown := [k for k in keys if k not in CITIES]:
        parser.error(f"unknown city {', '.join(unknown)}; use {', '.join(CITIES)}")
    if unknown := [d for d in denses if d not in DENSE_CHOICES]:
        parser.error(f"unknown --dense {', '.join(unknown)}; use {', '.join(DENSE_CHOICES)}")
    one_thread()
    state = code_state()
    results = []
    for dense in denses:
        for key in keys:
            res = measure(CITIES[key], dense)
            results.append(res)
            if not args.json:  # progress: a city takes from seconds to minutes
                t = res["kinds"]["ALL"]
                print(
                    f"{res['city']} dense={dense}: P@1 {t['p_at_1']:.3f} top-1 {t['top1']:.3f} "
                    f"one tap {t['one_tap']:.3f} declined {t['declined']:.3f} "
                    f"wrong {t['wrong']:.3f} | load {res['load_s']:.1f} s, CPU mean "
                    f"{res['cpu_mean_ms']:.2f} ms p95 {res['cpu_p95_ms']:.2f} ms",
                    file=sys.stderr,
                    flush=True,
                )
    if args.json:
        print(
            json.dumps(
                {"code": state, "results": without_nan(results)}, indent=1, ensure_ascii=False
            )
        )
    else:
        print(markdown(results) + f"\n\nMatcher measured: {state}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
