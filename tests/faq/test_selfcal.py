"""The answer decision calibrates itself on the index it decides for (faq/retrieval/selfcal.py):
a city whose FAQ has fewer wordings per entry than ours gets a more confident last stage,
our own KB keeps the decision it was fitted with, and any small index (the bot's commands)
can be calibrated the same way."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from faq.kb import KnowledgeBase
from faq.library import FaqLibrary
from faq.matcher import FaqMatcher, documents
from faq.retrieval import Document, Retriever
from faq.retrieval.cascade import Cascade
from faq.retrieval.confidence import Band, config_name
from faq.retrieval.selfcal import calibrate_for

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    json.loads(line)
    for line in (ROOT / "tests/data/faq_regression.jsonl").read_text("utf-8").splitlines()
    if line
]


def test_our_own_kb_keeps_the_decision_it_was_fitted_with(faq_library: FaqLibrary) -> None:
    cal = faq_library.current.calibration
    assert cal is not None and cal.models
    # the shipped models were fitted on this KB: its probes put it where they were fitted
    assert all(abs(r["shift"]) < 0.1 for r in cal.report.values()), cal.report


def _thinned(kb: KnowledgeBase) -> KnowledgeBase:
    """2 ja + 1 en questions per entry, as a typical city's FAQ file."""
    entries = tuple(
        replace(e, questions={"ja": e.questions["ja"][:2], "en": e.questions.get("en", ())[:1]})
        for e in kb
    )
    return KnowledgeBase(entries, kb.directory)


@pytest.fixture(scope="module")
def thin_retriever(faq_library: FaqLibrary, tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    # the bot's embedding cache holds every thinned text; a copy, so that building this index
    # does not prune the bot's own cache down to it
    cache = tmp_path_factory.mktemp("cache")
    for f in (ROOT / "var/faq-cache").glob("*.npz"):
        shutil.copy(f, cache)
    full = faq_library.current.retriever
    thin = _thinned(faq_library.current.kb)
    return Retriever(documents(thin), full.analyzer, full.synonyms, full.encoders, cache)


def _answered_right_and_wrong(matcher: FaqMatcher) -> tuple[int, int]:
    right = wrong = 0
    for case in CASES:
        result = matcher.match(case["q"])
        if result.answered:
            best = result.matches[0].entry.id
            right += best == case["id"]
            wrong += best != case["id"]
    return right, wrong


def test_a_thinner_faq_is_calibrated_up_without_more_wrong_answers(
    faq_library: FaqLibrary, thin_retriever: Retriever
) -> None:
    thin = _thinned(faq_library.current.kb)
    staged = bool(thin_retriever.models)
    cal = calibrate_for(thin_retriever, staged=staged)
    # the deciding (last) stage is raised; the cascade's first stage keeps its cut-offs
    assert cal.report[config_name(thin_retriever.models)]["shift"] > 0, cal.report
    before = FaqMatcher(thin, thin_retriever, cascade=staged)
    after = FaqMatcher(thin, thin_retriever, cascade=staged, calibration=cal)
    right_before, wrong_before = _answered_right_and_wrong(before)
    right_after, wrong_after = _answered_right_and_wrong(after)
    assert right_after >= right_before, (right_before, right_after)
    assert wrong_after <= wrong_before, (wrong_before, wrong_after)


def test_config_thresholds_still_win_over_the_calibrated_ones(
    faq_library: FaqLibrary, thin_retriever: Retriever
) -> None:
    thin = _thinned(faq_library.current.kb)
    cal = calibrate_for(thin_retriever, staged=bool(thin_retriever.models))  # cached by now
    strict = FaqMatcher(thin, thin_retriever, answer_threshold=0.9999, calibration=cal)
    result = strict.match("空き家バンクとは何ですか？")
    assert result.best is not None and result.best.entry.id == "housing.akiya-bank"
    assert result.band is Band.SUGGEST


COMMANDS = [
    Document(
        "cancel",
        (
            "予約をキャンセルしたい",
            "ツアーの予約を取り消したい",
            "申し込みをやめたい",
            "キャンセルお願いします",
        ),
        ("I want to cancel my booking", "Please cancel my tour"),
        "",
        "",
    ),
    Document(
        "move",
        (
            "日程を変更したい",
            "予約の日にちを変えたい",
            "別の日に変えられますか",
            "予約日をずらしたい",
        ),
        ("I want to change the date", "Can I move my booking to another day?"),
        "",
        "",
    ),
    Document(
        "bookings",
        ("予約を確認したい", "自分の予約を見せて", "予約一覧", "何を申し込んだか確認したい"),
        ("Show my bookings", "What have I booked?"),
        "",
        "",
    ),
    Document(
        "human",
        ("担当者と話したい", "人と話したい", "職員につないで", "オペレーターをお願いします"),
        ("I want to talk to a person", "Connect me to staff"),
        "",
        "",
    ),
]


def test_a_command_index_is_calibrated_by_the_same_machinery(faq_library: FaqLibrary) -> None:
    full = faq_library.current.retriever
    commands = Retriever(COMMANDS, full.analyzer, full.synonyms, full.encoders, None)
    faq_questions = ["空き家バンクとは何ですか？", "保育園の申し込み方法は？"]
    cal = calibrate_for(commands, COMMANDS, extra_negatives=faq_questions, staged=False)
    assert cal.probes["elsewhere"] >= len(faq_questions)
    # deterministic: the same index gives the same decision
    again = calibrate_for(commands, extra_negatives=faq_questions, staged=False)
    assert again.models == cal.models
    cascade = Cascade(commands, staged=False, calibration=cal)
    cancel = cascade.decide("予約をキャンセルしたいです")
    assert cancel.ranking.ranked[0].id == "cancel" and cancel.band is Band.ANSWER
    assert cascade.decide("こんにちは").band is not Band.ANSWER
    with pytest.raises(ValueError):
        calibrate_for(commands, COMMANDS[:2])
