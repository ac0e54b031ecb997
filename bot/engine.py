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

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from bot import metrics
from bot.config import ChannelAudiences
from bot.messages import Choice, EventKind, Incoming, Link, Reply
from bot.storage import handoffs, turns, unanswered
from bot.storage.bookings import BookingPolicy, SqlTourDesk
from bot.storage.models import (
    Handoff,
    UnansweredQuestion,
)
from faq.matcher import MatchResult
from faq.normalize import clean, clear_language, detect_language, fold, printable
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
        audiences: ChannelAudiences | None = None,
        clock: Callable[[], datetime] = utc_now,
        unanswered_per_hour: int = 5,
    ) -> None:
        self.sessions = sessions
        self.services = services
        self.intents = list(intents)
        self.policy = policy
        self.default_language = default_language
        self.audiences = audiences or ChannelAudiences()
        self.clock = clock
        self.unanswered_per_hour = unanswered_per_hour

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

    async def preview(self, incoming: Incoming) -> list[Reply]:
        """The replies `incoming` would get, with nothing kept (the transaction is rolled
        back): the welcome for a web page opened by someone who has not said anything yet,
        who is not a person the city keeps until they do."""
        async with self.sessions() as session, session.begin() as transaction:
            replies = list(await self._handle(session, incoming))
            await transaction.rollback()
        return replies

    async def _handle(self, session: AsyncSession, incoming: Incoming) -> list[Reply]:
        now = self.clock()
        if incoming.event_id is not None and not await turns.first_time(
            session, incoming.channel, incoming.event_id, now
        ):
            log.info("dropped duplicate %s event", incoming.channel)
            return DUPLICATE

        person = await self._person(session, incoming, now)
        saved, handoff_id = await turns.state_and_handoff(session, person.id)
        state: dict[str, Any] = dict(saved.data) if saved is not None else {}
        handoff = await session.get(Handoff, handoff_id) if handoff_id is not None else None

        text = clean(incoming.text)
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

        changes = dict(outcome.profile)
        language = changes.get("language", person.language)
        if turn.lang != language and not changes.get("language_chosen", person.language_chosen):
            # Someone who writes in English keeps getting English until they choose.
            changes["language"] = turn.lang
        await turns.update_person(session, person.id, changes)
        await self._apply_handoff(session, person, handoff, outcome.handoff, now)
        new_state = dict(state) if outcome.state is None else dict(outcome.state)
        offered = [[c.value, c.label] for r in outcome.replies for c in r.choices]
        if offered:
            new_state["choices"] = offered
        elif outcome.replies:
            new_state.pop("choices", None)
        # Always written, even unchanged: the version bump makes a concurrent event that
        # read the same state retry on the new one.
        await turns.save_state(session, person.id, saved, new_state, now)

        if not outcome.forget:
            said = printable(incoming.text)
            await turns.log_messages(
                session, self._log(person, incoming, said, intent.name, outcome, now)
            )
        if outcome.unanswered is not None and await unanswered.room_for(
            session, person.id, now, self.unanswered_per_hour
        ):
            session.add(self._unanswered(person, outcome.unanswered, turn.lang, now))
        log.info("%s event handled by %s", incoming.channel, intent.name)
        return outcome.replies

    async def _apply_handoff(
        self,
        session: AsyncSession,
        person: turns.PersonRow,
        handoff: Handoff | None,
        action: str | None,
        now: datetime,
    ) -> None:
        if action is None:
            return
        if action.startswith("open:"):
            await handoffs.open_handoff(
                session, self.policy, person.id, person.channel, action[5:], now
            )
        elif handoff is not None and action == "touch":
            handoff.last_activity_at = now
        elif handoff is not None and action == "close":
            handoff.status, handoff.closed_at, handoff.closed_by = "closed", now, "person"

    async def _person(
        self, session: AsyncSession, incoming: Incoming, now: datetime
    ) -> turns.PersonRow:
        hint = (incoming.language_hint or "")[:2].lower()
        values = {
            "channel": incoming.channel,
            "platform_user_id": incoming.user_id,
            "language": hint if hint in ("ja", "en") else self.default_language,
            "language_chosen": False,
            "audience": self.audiences.of(incoming.channel),
            "consent": False,
            "reachable": True,
            "created_at": now,
            "last_seen_at": now,
        }
        return await turns.person(session, values, unfollow=incoming.kind is EventKind.UNFOLLOW)

    def _language(self, person: turns.PersonRow, text: str, state: dict[str, Any]) -> str:
        # Inside a form, answers such as e-mail addresses or romaji names say nothing about
        # the language the person reads.
        if state.get("form"):
            return person.language
        if person.language_chosen:
            # A question clearly in the other language is answered in it (the intents offer
            # to switch); a lone "OK" or "Wi-Fi" is not clear enough to leave the chosen one.
            return clear_language(text) or person.language
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
        person: turns.PersonRow,
        incoming: Incoming,
        text: str,
        intent: str,
        outcome: Outcome,
        now: datetime,
    ) -> list[dict[str, Any]]:
        """The message log rows for this turn: what was said, then each reply."""
        said = text or (f"[{incoming.postback}]" if incoming.postback else f"[{incoming.kind}]")
        row = {"person_id": person.id, "intent": intent, "created_at": now}
        return [
            {**row, "direction": "in", "text": said[:LOG_LIMIT]},
            *({**row, "direction": "out", "text": r.text[:LOG_LIMIT]} for r in outcome.replies),
        ]

    @staticmethod
    def _unanswered(
        person: turns.PersonRow, result: MatchResult, lang: str, now: datetime
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
