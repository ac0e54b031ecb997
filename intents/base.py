"""What an intent sees (Turn) and what it returns (Outcome); the engine does all the I/O."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from functools import cached_property
from typing import Any, Protocol

from bot.messages import Choice, EventKind, Incoming, Reply
from faq.kb import TOPICS
from faq.library import FaqLibrary
from faq.matcher import FaqMatcher, MatchResult
from faq.normalize import fold
from intents.i18n import Catalog
from intents.ports import TourDesk
from intents.understanding import NOTHING, CommandBook, Understanding


@dataclass(frozen=True)
class Profile:
    language: str
    language_chosen: bool
    audience: str
    consent: bool


@dataclass(frozen=True)
class Services:
    """Read-only things every intent may use; built once per process."""

    library: FaqLibrary
    catalog: Catalog
    city_name: Mapping[str, str]
    contact: Mapping[str, str]
    tz: tzinfo
    privacy_notice: Mapping[str, str]
    # The bot's commands (commands.toml), understood with the FAQ matcher's models.
    commands: CommandBook = field(default_factory=CommandBook)
    suggestions: int = 3
    resume_after_hours: int = 24

    @property
    def matcher(self) -> FaqMatcher:
        """The matcher for the FAQ files as they are now (reloaded when staff edit them)."""
        return self.library.current


@dataclass
class Turn:
    incoming: Incoming
    text: str  # cleaned (NFKC, no control characters)
    lang: str  # the language to answer in
    profile: Profile
    state: Mapping[str, Any]
    services: Services
    now: datetime
    desk: TourDesk  # tours and sign-ups, bound to this turn's transaction
    # The engine resolves a typed number ("2") against the last choices into this value.
    postback: str | None = None
    # Staff own this conversation (an open handoff): the bot keeps quiet.
    in_handoff: bool = False

    @cached_property
    def folded(self) -> str:
        return fold(self.text)

    @cached_property
    def faq(self) -> MatchResult:
        """The FAQ match for this message, computed at most once per turn."""
        return self.services.matcher.match(self.text, top=max(5, self.services.suggestions))

    @cached_property
    def understood(self) -> Understanding:
        """What the person meant by this text: a command, an FAQ entry, or neither."""
        if not self.is_text or not self.folded:
            return NOTHING
        understander = self.services.commands.understander(self.services.matcher)
        return understander.understand(self.text, lambda: self.faq)

    @cached_property
    def command(self) -> str | None:
        """What the person asked the bot to do: a button's value, or the action of a command
        understood from their words (the same value the command's button would send)."""
        if self.postback is not None:
            return self.postback
        meant = self.understood.command
        return meant.action if meant is not None else None

    @property
    def is_text(self) -> bool:
        return self.incoming.kind is EventKind.TEXT and self.postback is None

    def say(self, key: str, **values: object) -> str:
        return self.services.catalog.text(key, self.lang, **values)

    def topic_choices(self) -> tuple[Choice, ...]:
        return tuple(Choice(self.say(f"topic.{t}"), f"topic:{t}") for t in TOPICS)

    def action_choices(self) -> tuple[Choice, ...]:
        """Sign up and see one's bookings: offered beside the topics in the main menu."""
        return (
            Choice(self.say("signup.btn.signup"), "signup:start"),
            Choice(self.say("choice_bookings"), "booking:list"),
        )

    def menu_choice(self) -> Choice:
        return Choice(self.say("choice_menu"), "menu")


@dataclass
class Outcome:
    replies: list[Reply]
    # The new conversation state; None keeps the stored one untouched.
    state: dict[str, Any] | None = None
    # Profile fields to change, e.g. {"language": "en", "language_chosen": True}.
    profile: dict[str, Any] = field(default_factory=dict)
    # A question the bot did not answer outright, for staff to see.
    unanswered: MatchResult | None = None
    # True after erasing the person's data: the engine then keeps no log of this turn.
    forget: bool = False
    # Handoff to staff: "open:asked", "open:unanswered", "touch" (activity), "close".
    handoff: str | None = None


class Intent(Protocol):
    name: str

    def claims(self, turn: Turn) -> bool:
        """Whether this intent handles the turn; asked in registry order, first one wins."""
        ...

    def respond(self, turn: Turn) -> Outcome | Awaitable[Outcome]:
        """Plain intents return an Outcome; ones that read or book tours are async."""
        ...


def keyword_set(*words: str) -> frozenset[str]:
    """Folded forms of trigger words, so 'ＭＥＮＵ', 'Menu' and 'menu' all match."""
    return frozenset(fold(w) for w in words)


IntentFactory = Callable[[], Intent]
