"""On-disk cache of entry embeddings, keyed by a hash of (model name, text kind, text): a restart
or a reload embeds only the entries whose text changed (e5 over 1,786 long answers takes
minutes on two cores). One .npz file per (model, kind), replaced atomically and pruned to the
current texts, so edits to the knowledge base do not make it grow without end."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .dense import Encoder, FloatArray, Kind

log = logging.getLogger(__name__)


def _key(model: str, kind: Kind, text: str) -> bytes:
    return hashlib.blake2b(f"{model}\x00{kind}\x00{text}".encode(), digest_size=16).digest()


def _path(cache_dir: Path, model: str, kind: Kind) -> Path:
    return cache_dir / f"emb-{re.sub(r'[^A-Za-z0-9._-]+', '_', model)}-{kind}.npz"


def embed_cached(
    encoder: Encoder, texts: Sequence[str], kind: Kind, cache_dir: Path | None
) -> FloatArray:
    """Embeddings of `texts` (rows in order), computing only those not in the cache."""
    if cache_dir is None:
        return encoder.encode(texts, kind)
    path = _path(cache_dir, encoder.name, kind)
    store: dict[bytes, FloatArray] = {}
    if path.exists():
        try:
            with np.load(path) as data:
                keys, vecs = data["keys"], data["vecs"]
            store = {k.tobytes(): vecs[i] for i, k in enumerate(keys)}
        except Exception as exc:  # a truncated or foreign file must not stop the bot
            log.warning("faq.retrieval: ignoring unreadable embedding cache %s (%s)", path, exc)
    keys_needed = [_key(encoder.name, kind, t) for t in texts]
    missing = sorted({i for i, k in enumerate(keys_needed) if k not in store})
    if missing:
        fresh = encoder.encode([texts[i] for i in missing], kind)
        for row, i in enumerate(missing):
            store[keys_needed[i]] = fresh[row]
        _save(path, {k: store[k] for k in keys_needed})
        log.info(
            "faq.retrieval: embedded %d new %s texts with %s", len(missing), kind, encoder.name
        )
    if not texts:
        return encoder.encode([], kind)
    return np.vstack([store[k] for k in keys_needed]).astype(np.float32, copy=False)


def _save(path: Path, store: dict[bytes, FloatArray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Raw uint8 rows, not numpy "S16": fixed-width bytes strings drop trailing NUL bytes, which
    # silently broke one key in 256.
    keys = np.frombuffer(b"".join(store.keys()), dtype=np.uint8).reshape(len(store), 16)
    vecs = np.vstack(list(store.values())).astype(np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, keys=keys, vecs=vecs)
        os.replace(tmp, path)  # readers never see a half-written file
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
