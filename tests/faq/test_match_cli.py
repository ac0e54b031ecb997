"""`python -m bot faq match` speaks the JSON-lines protocol staff and benchmarks rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_match_protocol_one_json_line_per_input_line(tmp_path: Path) -> None:
    queries = [
        "空き家バンクとは何ですか？",
        "",
        "What is the vacant house bank?",
        "パスポート 申請",
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "faq", "match", "--kb", "faq", "--top", "3"],
        input="\n".join(queries) + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == len(queries)
    records = [json.loads(line) for line in lines]
    assert [r["query"] for r in records] == queries
    assert records[0]["matches"][0]["id"] == "housing.akiya-bank" and records[0]["answered"]
    assert len(records[0]["matches"]) <= 3
    scores = [m["score"] for m in records[0]["matches"]]
    assert scores == sorted(scores, reverse=True)
    assert records[0]["band"] == "answer"
    assert records[1] == {"query": "", "matches": [], "answered": False, "band": "unknown"}
    assert records[2]["matches"][0]["id"] == "housing.akiya-bank"
    # a passport question is not ours: declined or offered choices, never answered
    assert records[3]["answered"] is False and records[3]["band"] in ("suggest", "unknown")
    # `answered` is exactly the answer band, for every line
    assert all(r["answered"] == (r["band"] == "answer") for r in records)
