"""The understanding layer on its own: the commands file staff edit, and how a command and an
FAQ entry that both fit are told apart (end to end: tests/dialogues)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from faq.library import FaqLibrary
from intents.understanding import (
    CommandBook,
    CommandFileError,
    load_commands,
    phrasing,
)


def test_the_shipped_commands_load_with_unique_shortcuts() -> None:
    commands = load_commands()
    ids = [c.id for c in commands]
    assert {"booking.cancel", "booking.move", "booking.list", "handoff.request"} <= set(ids)
    assert all(c.examples["ja"] and c.examples["en"] for c in commands)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (
            '[[command]]\nid = "a"\naction = "x"\nexamples.ja = ["あ"]\n'
            '[[command]]\nid = "b"\naction = "y"\nshortcuts = ["ヘルプ"]\nexamples.ja = ["い"]\n'
            '[[command]]\nid = "c"\naction = "z"\nshortcuts = ["へるぷ"]\nexamples.ja = ["う"]\n',
            "command 3 (c): shortcut 'へるぷ' is already b's",
        ),
        ('[[command]]\nid = "a"\naction = "x"\n', "command 1 (a): needs examples"),
        ('[[command]]\naction = "x"\nexamples.ja = ["あ"]\n', "command 1 (?): id is missing"),
        (
            '[[command]]\nid = "a"\naction = "x"\nin_form = "sometimes"\nexamples.ja = ["あ"]\n',
            "command 1 (a): in_form must be one of act, confirm, never",
        ),
    ],
)
def test_a_broken_commands_file_names_the_entry(tmp_path: Path, body: str, says: str) -> None:
    path = tmp_path / "commands.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(CommandFileError, match=re.escape(f"commands.toml: {says}")):
        load_commands(path)


@pytest.mark.parametrize(
    ("text", "form"),
    [
        ("予約をキャンセルしたい", "request"),
        ("ﾂｱｰｷｬﾝｾﾙｼﾀｲ", "request"),
        ("I need to cancel my tour booking.", "request"),
        ("キャンセルの方法は？", "question"),
        ("How do I cancel?", "question"),
        ("キャンセル", ""),
    ],
)
def test_requests_and_questions_are_told_apart(text: str, form: str) -> None:
    assert phrasing(text) == form


@pytest.mark.parametrize(
    ("text", "meant"),
    [
        ("予約をキャンセルしたいです", "booking.cancel"),
        ("I need to cancel my tour booking.", "booking.cancel"),
        ("日程を別の日に変えたい", "booking.move"),
        ("担当者と話したい", "handoff.request"),
        ("キャンセルの方法を教えてください", None),
        ("保育園の空き状況を知りたい", None),
    ],
)
def test_a_command_and_a_question_that_share_words(
    faq_library: FaqLibrary, text: str, meant: str | None
) -> None:
    matcher = faq_library.current
    understood = CommandBook().understander(matcher).understand(text, lambda: matcher.match(text))
    assert (understood.command.id if understood.command else None) == meant
    if meant is None:
        assert understood.band.value in ("answer", "suggest")  # the FAQ reading stays
        assert understood.top is not None and not understood.top.is_command
