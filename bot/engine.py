"""The conversation engine: one DB transaction per incoming event: load, pick intent, run, save."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import flag_modified
from sqlalchemy.orm.exc import StaleDataError

from bot import metrics
from bot.messages import Choice, EventKind, Incoming, Link, Reply
from bot.storage import handoffs
from bot.storage.bookings import BookingPolicy, SqlTourDesk
from bot.storage.models import (
    ConversationState,
    Handoff,
    InboundEvent,
    MessageLog,
    Person,
    UnansweredQuestion,
)
from faq.matcher import MatchResult
from faq.normalize import clean, detect_language, fold, printable
from intents.base import Intent, Outcome, Profile, Services, Turn

__all__ = ["Choice", "Engine", "EventKind", "Incoming", "Link", "RepliesHook", "Reply"]

log = logging.getLogger(__name__)

# Longer messages are cut before matching: a question is never this long, and matching
# cost grows with length. The full text (up to LOG_LIMIT) is still logged for staff.
MATCH_LIMIT = 1000
LOG_LIMIT = 4000
ATTEMPTS = 5
# Returned for an event id already handled; compared by identity, never mutated.
DUPLICATE: list[Reply] = []
RepliesHook = Callable[[AsyncSession, list[Reply]], Awaitable[None]]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Engine:
    """Channel-neutral: knows nothing of LINE, Telegram or HTTP."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        services: Services,
        intents: Sequence[Intent],
        policy: BookingPolicy,
        *,
        default_language: str = "ja",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sessions = sessions
        self.services = services
        self.intents = list(intents)
        self.policy = policy
        self.default_language = default_language
        self.clock = clock

    @metrics.timed_handle
    async def handle(
        self, incoming: Incoming, *, on_replies: RepliesHook | None = None
    ) -> list[Reply]:
        """Handle one event and return the replies to send. A redelivered event (same
        event_id) returns [] and changes nothing. Two concurrent events for one person
        cannot both win: the loser is retried on the fresh state.

        `on_replies(session, replies)` runs inside the same transaction, so a channel can
        store what it must send atomically with the state change (nothing lost in a crash).
        """
        for attempt in range(1, ATTEMPTS + 1):
            try:
                async with self.sessions() as session, session.begin():
                    replies = await self._handle(session, incoming)
                    if on_replies is not None and replies is not DUPLICATE:
                        await on_replies(session, replies)
                    return list(replies)
            except (IntegrityError, StaleDataError) as exc:
                # A concurrent event created the person / moved the state first, or the
                # same event id arrived twice at once: start over and see the winner's work.
                log.info("retrying event after a concurrent write (%s)", type(exc).__name__)
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
            except OperationalError as exc:
                if "locked" not in str(exc) or attempt == ATTEMPTS:
                    raise
                log.info("retrying event: SQLite database busy")
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
        raise RuntimeError("event could not be handled after concurrent-write retries")

    async def _handle(self, session: AsyncSession, incoming: Incoming) -> list[Reply]:
        now = self.clock()
        if incoming.event_id is not None:
            seen = await session.scalar(
                select(InboundEvent.id).where(
                    InboundEvent.channel == incoming.channel,
                    InboundEvent.event_id == incoming.event_id,
                )
            )
            if seen is not None:
                log.info("dropped duplicate %s event", incoming.channel)
                return DUPLICATE
            session.add(
                InboundEvent(channel=incoming.channel, event_id=incoming.event_id, received_at=now)
            )

        person = await self._person(session, incoming, now)
        # FOR UPDATE queues a person's concurrent events on PostgreSQL instead of letting them
        # race; the version column still catches any write that slips past (and on SQLite).
        state_row = await session.get(ConversationState, person.id, with_for_update=True)
        state: dict[str, Any] = dict(state_row.data or {}) if state_row is not None else {}

        text = clean(incoming.text)
        handoff = await handoffs.open_for(session, person.id)
        turn = Turn(
            incoming=incoming,
            text=text[:MATCH_LIMIT],
            lang=self._language(person, text, state),
            profile=Profile(
                person.language, person.language_chosen, person.audience, person.consent
            ),
            state=state,
            services=self.services,
            now=now,
            desk=SqlTourDesk(session, self.policy, person.id, now),
            postback=self._postback(incoming, text, state),
            in_handoff=handoff is not None,
        )
        intent, outcome = await self._run(turn)
        metrics.count_faq(intent.name, outcome.unanswered)  # a retried turn may count twice

        for key, value in outcome.profile.items():
            setattr(person, key, value)
        await self._apply_handoff(session, person, handoff, outcome.handoff, now)
        if turn.lang != person.language and not person.language_chosen:
            # Someone who writes in English keeps getting English until they choose.
            person.language = turn.lang
        new_state = dict(state) if outcome.state is None else dict(outcome.state)
        offered = [[c.value, c.label] for r in outcome.replies for c in r.choices]
        if offered:
            new_state["choices"] = offered
        elif outcome.replies:
            new_state.pop("choices", None)
        if state_row is None:
            # Added only now, so the intent's own queries cannot autoflush a first version;
            # two first events at once collide on the primary key and one is retried.
            session.add(ConversationState(person_id=person.id, data=new_state, updated_at=now))
        else:
            state_row.data = new_state
            state_row.updated_at = now
            # Always write the row: the version bump makes a concurrent event on stale state
            # retry.
            flag_modified(state_row, "data")

        if not outcome.forget:
            self._log(
                session, person, incoming, printable(incoming.text), intent.name, outcome, now
            )
        if outcome.unanswered is not None:
            session.add(self._unanswered(person, outcome.unanswered, turn.lang, now))
        log.info("%s event handled by %s", incoming.channel, intent.name)
        return outcome.replies

    async def _apply_handoff(
        self,
        session: AsyncSession,
        person: Person,
        handoff: Handoff | None,
        action: str | None,
        now: datetime,
    ) -> None:
        if action is None:
            return
        if action.startswith("open:"):
            await handoffs.open_handoff(session, self.policy, person, action[5:], now)
        elif handoff is not None and action == "touch":
            handoff.last_activity_at = now
        elif handoff is not None and action == "close":
            handoff.status, handoff.closed_at, handoff.closed_by = "closed", now, "person"

    async def _person(self, session: AsyncSession, incoming: Incoming, now: datetime) -> Person:
        person = await session.scalar(
            select(Person).where(
                Person.channel == incoming.channel, Person.platform_user_id == incoming.user_id
            )
        )
        if person is None:
            hint = (incoming.language_hint or "")[:2].lower()
            person = Person(
                channel=incoming.channel,
                platform_user_id=incoming.user_id,
                language=hint if hint in ("ja", "en") else self.default_language,
                language_chosen=False,
                audience="company" if incoming.channel == "telegram" else "resident",
                consent=False,
                reachable=True,
                created_at=now,
                last_seen_at=now,
            )
            session.add(person)
            await session.flush()
        else:
            person.last_seen_at = now
            if incoming.kind is not EventKind.UNFOLLOW:
                person.reachable = True
        return person

    def _language(self, person: Person, text: str, state: dict[str, Any]) -> str:
        # Inside a form, answers such as e-mail addresses or romaji names say nothing about
        # the language the person reads.
        if person.language_chosen or state.get("form"):
            return person.language
        return detect_language(text) or person.language

    @staticmethod
    def _postback(incoming: Incoming, text: str, state: dict[str, Any]) -> str | None:
        """A button press, or a typed number / label answering the last offered choices."""
        if incoming.kind is EventKind.POSTBACK:
            return incoming.postback or ""
        if incoming.kind is not EventKind.TEXT:
            return None
        offered = [c for c in state.get("choices") or [] if isinstance(c, list) and len(c) == 2]
        typed = fold(text)
        for value, label in offered:
            if typed and fold(label) == typed:  # the button's own words, typed
                return str(value)
        if text.isdigit() and 1 <= int(text) <= len(offered):
            return str(offered[int(text) - 1][0])
        return None

    async def _run(self, turn: Turn) -> tuple[Intent, Outcome]:
        for intent in self.intents:
            try:
                if intent.claims(turn):
                    result = intent.respond(turn)
                    return intent, (await result if inspect.isawaitable(result) else result)
            except SQLAlchemyError:
                raise  # the transaction is retried or fails as a whole, never half-applied
            except Exception as exc:  # an intent bug must not reach the person as a 500
                frames = "".join(traceback.format_tb(exc.__traceback__))
                # The exception's message may quote the person's text: log only its type.
                log.error("intent %s failed: %s\n%s", intent.name, type(exc).__name__, frames)
                return intent, Outcome([Reply(turn.say("internal_error"))])
        raise LookupError("no intent claimed the turn; the registry must end with a fallback")

    @staticmethod
    def _log(
        session: AsyncSession,
        person: Person,
        incoming: Incoming,
        text: str,
        intent: str,
        outcome: Outcome,
        now: datetime,
    ) -> None:
        said = text or (f"[{incoming.postback}]" if incoming.postback else f"[{incoming.kind}]")
        session.add(
            MessageLog(
                person_id=person.id,
                direction="in",
                text=said[:LOG_LIMIT],
                intent=intent,
                created_at=now,
            )
        )
        for reply in outcome.replies:
            session.add(
                MessageLog(
                    person_id=person.id,
                    direction="out",
                    text=reply.text[:LOG_LIMIT],
                    intent=intent,
                    created_at=now,
                )
            )

    @staticmethod
    def _unanswered(
        person: Person, result: MatchResult, lang: str, now: datetime
    ) -> UnansweredQuestion:
        best = result.best
        return UnansweredQuestion(
            person_id=person.id,
            text=result.query[:LOG_LIMIT],
            language=lang,
            band=result.band.value,
            best_entry_id=best.entry.id if best else None,
            best_score=best.score if best else None,
            created_at=now,
        )
