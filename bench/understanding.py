"""Cost and behaviour of the understanding step (intents/understanding.py): the command ranking
plus the FAQ match for one message, on ONE thread, as the engine runs it for each text turn.

    .venv/bin/python bench/understanding.py [--dense auto] [--json]

Messages: every query of bench/data/faq_queries.jsonl (questions, chit-chat) and every typed
line of tests/dialogues/dialogues.toml (commands in many wordings, form answers). Reports CPU
ms per message (mean / p95 / max) and how many FAQ questions were taken for a command.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def score_commands(understander: Any, matcher: Any, path: Path) -> dict[str, Any]:
    """Acted on the right command / a wrong one / offered the right one as a button."""
    labelled = [json.loads(x) for x in path.open(encoding="utf-8")]
    right = wrong = offered = lookalike_acted = 0
    misses = []
    for item in labelled:
        u = understander.understand(item["q"], lambda q=item["q"]: matcher.match(q))
        meant = u.command.id if u.command is not None else None
        want = item["command"]
        if want is None:
            lookalike_acted += meant is not None
            if meant is not None:
                misses.append(f"{item['q']} -> {meant} (a question)")
        elif meant == want:
            right += 1
        elif meant is not None:
            wrong += 1
            misses.append(f"{item['q']} -> {meant} (want {want})")
        elif any(c.id == want for c in u.suggested_commands):
            offered += 1
        else:
            misses.append(f"{item['q']} -> nothing (want {want})")
    commands = sum(1 for i in labelled if i["command"])
    return {
        "acted right": f"{right}/{commands}",
        "within one tap": f"{right + offered}/{commands}",
        "acted on a wrong command": f"{wrong}/{commands}",
        "look-alikes acted on": f"{lookalike_acted}/{len(labelled) - commands}",
        "misses": misses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dense", default="auto")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from faq.kb import load_kb
    from faq.matcher import FaqMatcher
    from intents.understanding import Understander, load_commands

    matcher = FaqMatcher.build(
        load_kb(ROOT / "faq"),
        dense=args.dense,
        cache_dir=ROOT / "var/faq-cache",
        synonyms=ROOT / "faq/lexicon/synonyms.toml",
    )
    understander = Understander.build(load_commands(), matcher.retriever, ROOT / "var/faq-cache")
    queries = [json.loads(x) for x in (ROOT / "bench/data/faq_queries.jsonl").open()]
    dialogues = tomllib.loads((ROOT / "tests/dialogues/dialogues.toml").read_text("utf-8"))
    typed = [s["say"] for d in dialogues["dialogue"] for s in d["steps"] if "say" in s]
    messages = [q["q"] for q in queries] + typed
    for m in messages[:20]:  # warm-up
        understander.understand(m, lambda m=m: matcher.match(m))
    times = []
    taken = 0
    taken_as: list[str] = []
    for q in queries:
        t0 = time.thread_time()
        u = understander.understand(q["q"], lambda q=q: matcher.match(q["q"]))
        times.append((time.thread_time() - t0) * 1000)
        if q["id"] is not None and u.command is not None:
            taken += 1
            taken_as.append(f"{q['q']} -> {u.command.id} (FAQ {q['id']})")
    for m in typed:
        t0 = time.thread_time()
        understander.understand(m, lambda m=m: matcher.match(m))
        times.append((time.thread_time() - t0) * 1000)
    faq_only = []
    commands_only = []
    for m in messages:
        t0 = time.thread_time()
        matcher.match(m)
        faq_only.append((time.thread_time() - t0) * 1000)
        t0 = time.thread_time()
        understander.rank_commands(m)
        commands_only.append((time.thread_time() - t0) * 1000)
    # Commands said in words no example uses, and questions that only look like commands:
    # commands.jsonl (written by the lead, who then saw its misses and added wording) and
    # commands_heldout.jsonl (written apart from the examples and never used to change them).
    scored = {
        name: score_commands(understander, matcher, ROOT / "bench/data" / name)
        for name in ("commands.jsonl", "commands_heldout.jsonl")
    }
    arr = np.asarray(times)
    out = {
        "dense": args.dense,
        "messages": len(arr),
        "cpu_ms_mean": round(float(arr.mean()), 2),
        "cpu_ms_p95": round(float(np.percentile(arr, 95)), 2),
        "cpu_ms_max": round(float(arr.max()), 2),
        "faq_match_alone_ms_mean_p95": (
            f"{np.mean(faq_only):.2f} / {np.percentile(faq_only, 95):.2f}"
        ),
        "command_ranking_alone_ms_mean_p95": (
            f"{np.mean(commands_only):.2f} / {np.percentile(commands_only, 95):.2f}"
        ),
        "in_scope_faq_taken_as_command": taken,
        "faq_taken": taken_as,
        **{f"{name}: {k}": v for name, result in scored.items() for k, v in result.items()},
        "in_scope_faq": sum(q["id"] is not None for q in queries),
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print("\n".join(f"{k}: {v}" for k, v in out.items() if not isinstance(v, list)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
