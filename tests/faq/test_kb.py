"""The FAQ loader: the sample KB is valid, and staff mistakes are named by file and entry."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faq.kb import TOPICS, KnowledgeBaseError, load_kb

ROOT = Path(__file__).resolve().parents[2]

GOOD = """
[[entry]]
id = "housing.one"
topic = "housing"
audience = "all"
questions.ja = ["質問"]
questions.en = ["Question"]
answer.ja = "答え"
answer.en = "Answer"
"""


def test_sample_kb_covers_every_topic_with_60_plus_entries() -> None:
    kb = load_kb(ROOT / "faq")
    assert len(kb) >= 60
    assert {e.topic for e in kb} == set(TOPICS)
    for entry in kb:
        assert entry.id.startswith(entry.topic + ".")
        assert entry.answer.get("en"), f"{entry.id} has no English answer"


def problems(tmp_path: Path, *files: tuple[str, str]) -> list[str]:
    for name, text in files:
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(KnowledgeBaseError) as err:
        load_kb(tmp_path)
    return err.value.problems


def test_duplicate_id_names_both_files(tmp_path: Path) -> None:
    found = problems(tmp_path, ("a.toml", GOOD), ("b.toml", GOOD))
    assert found == ["b.toml entry #1: duplicate id 'housing.one' (already in a.toml)"]


def test_missing_japanese_answer(tmp_path: Path) -> None:
    found = problems(tmp_path, ("a.toml", GOOD.replace('answer.ja = "答え"\n', "")))
    assert any("a.toml entry #1 (id 'housing.one')" in p and "answer.ja" in p for p in found)


def test_unknown_topic(tmp_path: Path) -> None:
    found = problems(tmp_path, ("a.toml", GOOD.replace('topic = "housing"', 'topic = "weather"')))
    assert any("topic 'weather' is unknown" in p for p in found)


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    found = problems(tmp_path, ("broken.toml", GOOD + "\nid = = 3\n"))
    assert found[0].startswith("broken.toml: not valid TOML")


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    bad = GOOD.replace('topic = "housing"', 'topic = "x"').replace(
        'audience = "all"', 'audience = "z"'
    )
    found = problems(tmp_path, ("a.toml", bad))
    assert len(found) == 2


def test_faq_check_command(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "bot", "faq", "check", "--kb", str(ROOT / "faq")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert ok.returncode == 0 and "entries OK" in ok.stdout
    (tmp_path / "a.toml").write_text(GOOD.replace('answer.ja = "答え"\n', ""), encoding="utf-8")
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "faq", "check", "--kb", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert bad.returncode == 2 and "a.toml entry #1" in bad.stderr
