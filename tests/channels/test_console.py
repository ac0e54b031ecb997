"""`python -m bot chat` from a pipe: the scripted conversation newcomers and docs use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_scripted_chat_answers_sensibly(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'c.sqlite3'}"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "chat"],
        input="空き家バンクについて教えて\nEnglish\nchildcare\n1\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=120,
        check=True,
    )
    out = proc.stdout
    assert "> 空き家バンクについて教えて" in out
    assert "空き家バンク" in out.split("> English")[0]
    assert "I'll answer in English" in out
    after = out.split("> childcare", 1)[1]
    assert "  1. " in after  # choices are numbered lines
    assert "nurser" in after.split("> 1", 1)[1].lower()
    assert "Traceback" not in proc.stderr
