"""What a person meant: one typed value (Understanding) per message, for every intent.

Commands (cancel a booking, talk to a person, help...) are described by example utterances in
commands.toml and ranked by the same hybrid retriever and calibrated confidence as the FAQ
entries; the two rankings then compete, so 「予約をキャンセルしたい」 is the cancel command
while 「キャンセル料はかかりますか」 stays a question for the FAQ. Exact texts (button labels,
one-word commands) are shortcuts that skip the ranking.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from faq.matcher import Band, FaqMatcher, MatchResult
from faq.normalize import fold
from faq.retrieval import Document, Retriever
from faq.retrieval.cascade import Cascade
from faq.retrieval.normalize import is_kana
from faq.retrieval.selfcal import Calibration, calibrate_for

log = logging.getLogger(__name__)

COMMANDS_FILE = Path(__file__).with_name("commands.toml")
# The dense model the command index uses: commands are short, everyday phrases, where the
# cheap sentence encoder does as well as e5, and its ~1.5 ms keeps understanding cheap.
_COMMAND_MODELS = ("use",)
# Below this cosine to every command utterance, no command is ranked at all: the commands
# the dialogue set understands lie at 0.62 and above, while 78 % of the FAQ's test questions
# lie below it (bench/understanding.py), and ranking costs a second encode (~3 ms).
_COMMAND_GATE = 0.45


# How people phrase a request (do something) and a question (tell me something). Between a
# command and an FAQ entry that both fit, the form decides: 「キャンセルしたい」 asks for the
# cancellation, 「キャンセルの方法は？」 asks about it.
_REQUEST = re.compile(
    r"(たい|たいです|たいんですが|ください|下さい|お願い|おねがい|してほしい|して欲しい|なくなった|"
    r"なくなりました|なくなっちゃ|できません|行けません|やめます|\bplease\b|\bi want\b|"
    r"\bi'd like\b|\bi need\b|\bi have to\b|\bi can't\b|\bi cannot\b|\blet me\b)",
    re.IGNORECASE,
)
_QUESTION = re.compile(
    r"([?？]|ですか|ますか|でしょうか|方法|どうすれば|どうやって|いつ|いくら|教えて|"
    r"\bhow\b|\bwhat\b|\bwhen\b|\bwhere\b|\bwhich\b|\bis there\b|\bcan i\b|\bdo i\b)",
    re.IGNORECASE,
)
# A command the ranking only half believes is still carried out when the person plainly asks
# for something and no FAQ entry fits at all (cancelling and erasing confirm with a tap).
_REQUEST_ACT = 0.5
# Confidences this close are a tie, which the phrasing breaks.
_TIE = 0.05


def phrasing(text: str) -> str:
    """ "request", "question", or "" when both or neither."""
    folded = fold(text)  # katakana as hiragana: ｷｬﾝｾﾙｼﾀｲ is a request too
    request, question = bool(_REQUEST.search(folded)), bool(_QUESTION.search(folded))
    if request == question:
        return ""
    return "request" if request else "question"


class InForm(StrEnum):
    ACT = "act"  # honoured inside a form when the text is not a valid answer to the step
    CONFIRM = "confirm"  # would throw the form away: asked with a tap first
    NEVER = "never"  # the form handles it itself (language, greetings, starting again)


@dataclass(frozen=True)
class Command:
    id: str
    action: str  # the postback value it stands for
    in_form: InForm
    shortcuts: frozenset[str]  # folded exact texts
    examples: Mapping[str, tuple[str, ...]]

    def document(self) -> Document:
        # The examples again stand in for an answer: the retriever's passage and answer
        # signals then read all of them, not only the first (a command has no answer text).
        ja, en = self.examples.get("ja", ()), self.examples.get("en", ())
        return Document(
            id=self.id,
            questions_ja=ja,
            questions_en=en,
            answer_ja="。".join(ja),
            answer_en=". ".join(en),
        )


class CommandFileError(ValueError):
    pass


def load_commands(path: Path = COMMANDS_FILE) -> tuple[Command, ...]:
    """Read and check commands.toml; a broken file is a start-up error naming the entry."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    out: list[Command] = []
    seen: dict[str, str] = {}
    for n, item in enumerate(raw.get("command", []), start=1):
        where = f"{path.name}: command {n} ({item.get('id', '?')})"
        try:
            examples = {
                lang: tuple(str(x) for x in item.get("examples", {}).get(lang, ()))
                for lang in ("ja", "en")
            }
            command = Command(
                id=str(item["id"]),
                action=str(item["action"]),
                in_form=InForm(item.get("in_form", "act")),
                shortcuts=frozenset(fold(s) for s in item.get("shortcuts", ()) if fold(s)),
                examples=examples,
            )
        except KeyError as exc:
            raise CommandFileError(f"{where}: {exc.args[0]} is missing") from None
        except ValueError:
            choices = ", ".join(InForm)
            raise CommandFileError(f"{where}: in_form must be one of {choices}") from None
        if not any(examples.values()):
            raise CommandFileError(f"{where}: needs examples.ja or examples.en")
        for s in command.shortcuts:
            if s in seen:
                raise CommandFileError(f"{where}: shortcut {s!r} is already {seen[s]}'s")
            seen[s] = command.id
        out.append(command)
    if len({c.id for c in out}) != len(out):
        raise CommandFileError(f"{path.name}: command ids must be unique")
    return tuple(out)


@dataclass(frozen=True)
class Meaning:
    """One reading of a message: a command, or an FAQ entry (by id)."""

    id: str
    score: float  # the ranking's score, comparable only within its own kind
    command: Command | None = None

    @property
    def is_command(self) -> bool:
        return self.command is not None


@dataclass(frozen=True)
class Understanding:
    """band ANSWER: act on meanings[0]; SUGGEST: offer meanings to tap; UNKNOWN: say so."""

    band: Band
    confidence: float
    meanings: tuple[Meaning, ...]
    exact: bool = False  # a shortcut text or a button, not a ranking

    @property
    def top(self) -> Meaning | None:
        return self.meanings[0] if self.meanings else None

    @property
    def command(self) -> Command | None:
        """The command to carry out, if the person clearly asked for one."""
        top = self.top
        if self.band is Band.ANSWER and top is not None:
            return top.command
        return None

    @property
    def suggested_commands(self) -> tuple[Command, ...]:
        if self.band is not Band.SUGGEST:
            return ()
        return tuple(m.command for m in self.meanings if m.command is not None)


NOTHING = Understanding(Band.UNKNOWN, 0.0, ())


class Understander:
    """Built once per FAQ matcher, beside it: the command index shares its analyser, synonym
    table and sentence encoder, so it costs no model memory of its own."""

    def __init__(
        self,
        commands: Sequence[Command],
        retriever: Retriever,
        calibration: Calibration | None = None,
    ) -> None:
        self.commands = {c.id: c for c in commands}
        self._shortcuts = {s: c for c in commands for s in c.shortcuts}
        self._retriever = retriever
        self._cascade = Cascade(retriever, staged=False, calibration=calibration)

    @classmethod
    def build(
        cls, commands: Sequence[Command], faq: Retriever, cache_dir: Path | None = None
    ) -> Understander:
        encoders = [e for e in faq.encoders if e.key in _COMMAND_MODELS]
        # A folder of its own: the embedding and analysis caches keep one file per model,
        # pruned to the last index built, so sharing the FAQ's would evict its entries.
        own = cache_dir / "commands" if cache_dir is not None else None
        retriever = Retriever(
            [c.document() for c in commands], faq.analyzer, faq.synonyms, encoders, own
        )
        # The confidence aligned to the command index itself (a dozen examples a command,
        # where FAQ entries have a few questions), with the FAQ's own questions as what must
        # not be taken for a command (cached beside the embeddings).
        questions = [q for d in faq.docs for q in (*d.questions_ja, *d.questions_en)]
        calibration = calibrate_for(
            retriever, extra_negatives=questions, staged=False, name="commands"
        )
        return cls(commands, retriever, calibration)

    def shortcut(self, text: str) -> Command | None:
        return self._shortcuts.get(fold(text))

    def rank_commands(self, text: str) -> tuple[Band, float, tuple[Meaning, ...]]:
        if not fold(text):
            return Band.UNKNOWN, 0.0, ()
        nearest = self._retriever.nearest_question(text, _COMMAND_MODELS[0])
        # Kana-only text reads badly to the sentence encoder (にってい へんこう): rank it.
        if (
            nearest is not None
            and nearest < _COMMAND_GATE
            and not is_kana(fold(text).replace(" ", ""))
        ):
            return Band.UNKNOWN, 0.0, ()
        d = self._cascade.decide(text, top=3)
        meanings = tuple(
            Meaning(s.id, s.score, self.commands[s.id])
            for s in d.ranking.ranked
            if s.id in self.commands
        )
        return d.band, d.confidence, meanings

    def understand(self, text: str, faq: Callable[[], MatchResult]) -> Understanding:
        exact = self.shortcut(text)
        if exact is not None:
            return Understanding(Band.ANSWER, 1.0, (Meaning(exact.id, 1.0, exact),), exact=True)
        c_band, c_p, commands = self.rank_commands(text)
        result = faq()
        entries = tuple(Meaning(m.entry.id, m.score) for m in result.matches)
        form = phrasing(text) if commands else ""
        if c_band is Band.ANSWER and commands:
            # Both fit: the more confident reading wins; in a near tie, the phrasing decides.
            tie = abs(c_p - result.confidence) <= _TIE and bool(form)
            command_wins = result.band is not Band.ANSWER or (
                form == "request" if tie else c_p >= result.confidence
            )
            if command_wins:
                return Understanding(Band.ANSWER, c_p, (commands[0], *entries))
        elif commands and form == "request" and c_p >= _REQUEST_ACT and result.band is Band.UNKNOWN:
            return Understanding(Band.ANSWER, c_p, (commands[0], *entries))
        if result.band is Band.ANSWER:
            return Understanding(Band.ANSWER, result.confidence, entries)
        command = (commands[0],) if c_band is not Band.UNKNOWN and commands else ()
        faqs = entries if result.band is Band.SUGGEST else ()
        offered = (*command, *faqs) if c_p >= result.confidence else (*faqs, *command)
        if offered:
            return Understanding(Band.SUGGEST, max(c_p, result.confidence), offered)
        return Understanding(Band.UNKNOWN, max(c_p, result.confidence), entries)


def describe(u: Understanding) -> dict[str, Any]:
    """For logs and benchmarks: what was understood, without the person's words."""
    return {
        "band": u.band.value,
        "confidence": round(u.confidence, 3),
        "meanings": [("cmd:" if m.is_command else "") + m.id for m in u.meanings[:3]],
        "exact": u.exact,
    }


class CommandBook:
    """The commands, and the Understander of the FAQ matcher in use: rebuilt beside each new
    matcher (staff edited the FAQ), because it borrows that matcher's models."""

    def __init__(
        self, commands: Sequence[Command] | None = None, cache_dir: Path | None = None
    ) -> None:
        self.commands = tuple(commands) if commands is not None else load_commands()
        self.cache_dir = cache_dir
        self._key = repr(self.commands)

    def understander(self, matcher: FaqMatcher) -> Understander:
        built = _BUILT.setdefault(matcher, {})
        if self._key not in built:
            built[self._key] = Understander.build(self.commands, matcher.retriever, self.cache_dir)
        return built[self._key]


# Understanders by the matcher whose models they borrow: derived, read-only data that goes
# with its matcher (weakly held), so every runtime of a process over one knowledge base (the
# web app's, the tests' many) shares one instead of indexing and calibrating again.
_BUILT: WeakKeyDictionary[FaqMatcher, dict[str, Understander]] = WeakKeyDictionary()
