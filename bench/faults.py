"""Heavier fault runs: the kill tests of tests/faults over several seeds and more people.

    .venv/bin/python bench/faults.py [--seeds 1,2,3] [--users 4] [--kills 4] [--db sqlite]

Runs tests/faults/test_kill_web.py (web SIGKILLed during LINE sign-ups), test_kill_worker.py
(worker SIGKILLed mid-broadcast) and test_postgres_restart.py (PostgreSQL crashed and
restarted under webhooks) once per seed with FAULT_SEED / FAULT_USERS / FAULT_KILLS set, and
prints one line per run with what each kill point was and how many Telegram rows were left
in doubt. `make test` runs the same tests with one seed, two people and two kills.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["tests/faults/test_kill_web.py", "tests/faults/test_kill_worker.py"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--kills", type=int, default=4)
    parser.add_argument("--db", default="sqlite", help="sqlite, postgresql or both")
    args = parser.parse_args()
    selector = "" if args.db == "both" else args.db
    failures = 0
    for seed in [int(s) for s in args.seeds.split(",")]:
        env = {**os.environ, "FAULT_SEED": str(seed), "FAULT_USERS": str(args.users),
               "FAULT_KILLS": str(args.kills)}  # fmt: skip
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-m", "pytest", *TESTS, "-s", "-p", "no:warnings", "-q",
             *(["-k", selector] if selector else [])],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        notes = [
            line for line in run.stdout.splitlines()
            if re.match(r"(kills at|Telegram:|answered by push|FAULT_SEED)", line.lstrip("."))
        ]  # fmt: skip
        verdict = "ok" if run.returncode == 0 else "FAILED"
        failures += run.returncode != 0
        print(f"seed {seed}: {verdict} in {seconds:.0f} s")
        for line in notes:
            print(f"    {line.lstrip('.')}")
        if run.returncode != 0:
            print(run.stdout[-4000:])
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/faults/test_postgres_restart.py", "-s", "-q",
         "-p", "no:warnings"], cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    status = [line.lstrip(".") for line in run.stdout.splitlines() if "statuses" in line]
    print(f"PostgreSQL restart: {'ok' if run.returncode == 0 else 'FAILED'} {status}")
    failures += run.returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
