"""Staff edit the FAQ files while the bot runs: the index follows without a restart."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from faq.kb import KnowledgeBase
from faq.library import FaqLibrary
from faq.matcher import FaqMatcher

ROOT = Path(__file__).resolve().parents[2]


def lexical(kb: KnowledgeBase) -> FaqMatcher:
    return FaqMatcher.build(kb, dense="off")


def touch_later(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


async def test_edited_files_are_picked_up_and_broken_ones_are_refused(tmp_path: Path) -> None:
    kb_dir = tmp_path / "faq"
    kb_dir.mkdir()
    shutil.copy(ROOT / "faq" / "housing.toml", kb_dir / "housing.toml")
    library = FaqLibrary(kb_dir, lexical)
    before = library.current
    assert await library.refresh() is False  # nothing changed: nothing rebuilt

    extra = kb_dir / "living.toml"
    extra.write_text(
        '[[entry]]\nid = "living.dog"\ntopic = "living"\n'
        'questions.ja = ["犬の登録はどこでしますか"]\nanswer.ja = "市役所で登録します。"\n',
        encoding="utf-8",
    )
    assert await library.refresh() is True
    assert library.current is not before and library.current.kb.get("living.dog") is not None

    working = library.current
    extra.write_text('[[entry]]\nid = "living.dog"\ntopic = "weather"\n', encoding="utf-8")
    touch_later(extra)
    assert await library.refresh() is False
    assert library.current is working  # still answering from the last good files
    assert any("living.toml" in p for p in library.problems)
