"""On-disk cache of entry analyses (lemmas + reading), keyed by a hash of analyser and text:
analysing 1,786 long answers with MeCab takes ~5 s, more than the whole start-up budget.
Used only while building; ranking never touches it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

from .analyzer import Analysis, Analyzer

log = logging.getLogger(__name__)
_VERSION = "1"  # bump when analyzer.py changes what it emits


class CachedAnalyzer:
    def __init__(self, analyzer: Analyzer, cache_dir: Path | None) -> None:
        self.name = analyzer.name
        self._inner = analyzer
        self._path = (cache_dir / "analysis.json") if cache_dir else None
        self._old: dict[str, list[object]] = {}
        self._new: dict[str, list[object]] = {}
        if self._path and self._path.exists():
            try:
                self._old = json.loads(self._path.read_text(encoding="utf-8"))
            except Exception as exc:
                log.warning("faq.retrieval: ignoring unreadable analysis cache (%s)", exc)

    def _key(self, text: str) -> str:
        raw = f"{_VERSION}\x00{self.name}\x00{text}".encode()
        return hashlib.blake2b(raw, digest_size=12).hexdigest()

    def analyse(self, text: str) -> Analysis:
        key = self._key(text)
        hit = self._new.get(key) or self._old.get(key)
        if hit is not None:
            terms, reading = hit
            self._new[key] = hit
            return Analysis(list(terms), str(reading))  # type: ignore[call-overload]
        a = self._inner.analyse(text)
        self._new[key] = [a.terms, a.reading]
        return a

    def save(self) -> None:
        """Write the entries analysed in this build (pruning removed texts), if anything changed."""
        if self._path is None or self._new.keys() == self._old.keys():
            return
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix="analysis", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._new, fh, ensure_ascii=False, separators=(",", ":"))
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
