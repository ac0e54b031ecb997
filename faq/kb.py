"""Load and validate the knowledge base: one TOML file per topic, a list of [[entry]] tables."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOPICS: tuple[str, ...] = (
    "housing",
    "childcare",
    "telework",
    "living",
    "support",
    "tours",
    "company",
)
AUDIENCES: tuple[str, ...] = ("all", "resident", "company")


@dataclass(frozen=True)
class Entry:
    id: str
    topic: str
    audience: str
    questions: Mapping[str, tuple[str, ...]]  # language -> question phrasings
    answer: Mapping[str, str]  # language -> answer text; "ja" always present
    source: str  # file name, for error messages and staff views
    extra: Mapping[str, Any] = field(default_factory=dict)

    def answer_in(self, lang: str) -> str:
        return self.answer.get(lang) or self.answer["ja"]

    def title_in(self, lang: str) -> str:
        """The entry's first question in `lang`: how it is shown as a choice."""
        qs = self.questions.get(lang) or self.questions.get("ja") or (self.id,)
        return qs[0]


@dataclass(frozen=True)
class KnowledgeBase:
    entries: tuple[Entry, ...]
    directory: Path

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> Entry | None:
        return self._by_id.get(entry_id)

    def by_topic(self, topic: str) -> list[Entry]:
        return [e for e in self.entries if e.topic == topic]

    @property
    def _by_id(self) -> dict[str, Entry]:
        cached: dict[str, Entry] | None = self.__dict__.get("_index")
        if cached is None:
            cached = {e.id: e for e in self.entries}
            object.__setattr__(self, "_index", cached)
        return cached


class KnowledgeBaseError(Exception):
    """Every problem found in the files, each naming the file and the entry."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    return None


def _parse_entry(raw: Any, source: str, n: int, problems: list[str]) -> Entry | None:
    where = f"{source} entry #{n}"
    if not isinstance(raw, dict):
        problems.append(f"{where}: [[entry]] must be a table")
        return None
    entry_id = raw.get("id")
    if not isinstance(entry_id, str) or not entry_id.strip():
        problems.append(f'{where}: missing id (a text such as "housing.akiya-bank")')
        return None
    where = f"{where} (id {entry_id!r})"
    found = len(problems)
    topic = raw.get("topic")
    if topic not in TOPICS:
        problems.append(f"{where}: topic {topic!r} is unknown; use one of {', '.join(TOPICS)}")
    audience = raw.get("audience", "all")
    if audience not in AUDIENCES:
        problems.append(
            f"{where}: audience {audience!r} is unknown; use one of {', '.join(AUDIENCES)}"
        )
    questions_raw = raw.get("questions", {})
    answer_raw = raw.get("answer", {})
    if not isinstance(questions_raw, dict) or not isinstance(answer_raw, dict):
        problems.append(
            f"{where}: questions and answer must be written as questions.ja / answer.ja"
        )
        return None
    questions: dict[str, tuple[str, ...]] = {}
    for lang, value in questions_raw.items():
        parsed = _strings(value)
        if parsed is None:
            problems.append(f"{where}: questions.{lang} must be a list of texts")
        elif parsed:
            questions[lang] = parsed
    if "ja" not in questions:
        problems.append(f"{where}: questions.ja is missing or empty (at least one question)")
    answer: dict[str, str] = {}
    for lang, value in answer_raw.items():
        if not isinstance(value, str):
            problems.append(f"{where}: answer.{lang} must be a text")
        elif value.strip():
            answer[lang] = value.strip()
    if "ja" not in answer:
        problems.append(f"{where}: answer.ja is missing or empty (the Japanese answer is required)")
    if len(problems) > found:
        return None
    known = {"id", "topic", "audience", "questions", "answer"}
    return Entry(
        id=entry_id.strip(),
        topic=str(topic),
        audience=str(audience),
        questions=questions,
        answer=answer,
        source=source,
        extra={k: v for k, v in raw.items() if k not in known},
    )


def load_kb(directory: Path | str) -> KnowledgeBase:
    """Read every *.toml file directly in `directory`; raise KnowledgeBaseError listing all
    problems (syntax, duplicate ids, unknown topics, missing Japanese) at once."""
    directory = Path(directory)
    if not directory.is_dir():
        raise KnowledgeBaseError([f"{directory}: not a directory of FAQ files"])
    problems: list[str] = []
    entries: list[Entry] = []
    seen: dict[str, str] = {}
    files = sorted(directory.glob("*.toml"))
    if not files:
        problems.append(f"{directory}: no *.toml FAQ files found")
    for path in files:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            problems.append(f"{path.name}: not valid TOML: {exc}")
            continue
        raw_entries = data.get("entry", [])
        if not isinstance(raw_entries, list):
            problems.append(f"{path.name}: entries must be written as [[entry]] tables")
            continue
        for n, raw in enumerate(raw_entries, start=1):
            entry = _parse_entry(raw, path.name, n, problems)
            if entry is None:
                continue
            if entry.id in seen:
                first = seen[entry.id]
                problems.append(
                    f"{path.name} entry #{n}: duplicate id {entry.id!r} (already in {first})"
                )
                continue
            seen[entry.id] = path.name
            entries.append(entry)
    if problems:
        raise KnowledgeBaseError(problems)
    return KnowledgeBase(entries=tuple(entries), directory=directory)
