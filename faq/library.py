"""The knowledge base in use, rebuilt when staff edit the FAQ files (no restart needed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from faq.kb import KnowledgeBase, KnowledgeBaseError, load_kb
from faq.matcher import FaqMatcher

log = logging.getLogger(__name__)

Signature = tuple[tuple[str, int, int], ...]


def signature(directory: Path) -> Signature:
    """Names, sizes and modification times of the FAQ files: cheap to compare every few
    seconds, and it changes on any save, rename or deletion."""
    files = []
    for path in sorted(directory.glob("*.toml")):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue  # removed between listing and stat
        files.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(files)


class FaqLibrary:
    def __init__(self, directory: Path, build: Callable[[KnowledgeBase], FaqMatcher]) -> None:
        self.directory = directory
        self._build = build
        self._signature = signature(directory)
        self._current = build(load_kb(directory))
        # Problems found in the files at the last reload, for the console's FAQ page.
        self.problems: list[str] = []

    @property
    def current(self) -> FaqMatcher:
        return self._current

    async def refresh(self) -> bool:
        """Rebuild if the files changed. Work runs in a thread, so answering never waits;
        broken files keep the previous knowledge base in service and are reported."""
        seen = signature(self.directory)
        if seen == self._signature:
            return False
        self._signature = seen
        try:
            kb = await asyncio.to_thread(load_kb, self.directory)
        except KnowledgeBaseError as exc:
            self.problems = exc.problems
            log.warning(
                "FAQ files changed but have %d problem(s); still answering from the previous "
                "version: %s",
                len(exc.problems),
                "; ".join(exc.problems[:5]),
            )
            return False
        self._current = await asyncio.to_thread(self._build, kb)
        self.problems = []
        log.info("FAQ reloaded: %d entries", len(kb))
        return True

    async def watch(self, every: float = 5.0) -> None:
        """Poll the files until cancelled (started by the web app's lifespan)."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.refresh()
            except Exception as exc:  # a reload failure must not end the watch
                log.warning("FAQ reload failed: %s", type(exc).__name__)
