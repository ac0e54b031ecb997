"""Answer from the knowledge base, or offer the closest entries when not sure (「もしかして…」)."""

from __future__ import annotations

from typing import Any

from bot.messages import Choice, Reply
from faq.kb import Entry
from faq.matcher import Band
from intents.base import Outcome, Turn
from intents.handoff import MISSES_BEFORE_OFFER, offer_choice

# Entries after which "sign up" is the obvious next step.
SIGNUP_TOPICS = ("tours",)
SIGNUP_HINTS = ("tour", "meeting", "signup", "visit")


def answer_reply(turn: Turn, entry: Entry) -> Reply:
    choices: tuple[Choice, ...] = (turn.menu_choice(),)
    if entry.topic in SIGNUP_TOPICS or (
        entry.topic == "company" and any(h in entry.id for h in SIGNUP_HINTS)
    ):
        choices = (Choice(turn.say("signup.btn.signup"), "signup:start"), *choices)
    return Reply(entry.answer_in(turn.lang), choices=choices)


class FaqAnswer:
    name = "faq"

    def claims(self, turn: Turn) -> bool:
        if turn.postback is not None:
            return turn.postback.startswith("faq:")
        return turn.is_text and bool(turn.folded) and turn.faq.band is not Band.UNKNOWN

    def respond(self, turn: Turn) -> Outcome:
        if turn.postback is not None:
            entry = turn.services.matcher.kb.get(turn.postback.split(":", 1)[1])
            if entry is None:
                return Outcome([Reply(turn.say("faq_unknown_entry"), choices=turn.topic_choices())])
            return Outcome([answer_reply(turn, entry)], state=missed(turn, False))
        result = turn.faq
        if result.band is Band.ANSWER and result.best is not None:
            return Outcome([answer_reply(turn, result.best.entry)], state=missed(turn, False))
        closest = result.matches[: turn.services.suggestions]
        choices = tuple(Choice(m.entry.title_in(turn.lang), f"faq:{m.entry.id}") for m in closest)
        state = missed(turn, True)
        extra = (offer_choice(turn),) if state["misses"] >= MISSES_BEFORE_OFFER else ()
        return Outcome(
            [Reply(turn.say("did_you_mean"), choices=(*choices, *extra, turn.menu_choice()))],
            state=state,
            unanswered=result,
        )


def missed(turn: Turn, miss: bool) -> dict[str, Any]:
    """The state with the count of questions in a row the bot could not answer outright."""
    state = dict(turn.state)
    state["misses"] = int(state.get("misses", 0)) + 1 if miss else 0
    return state
