"""Answer from the knowledge base, or offer the closest entries when not sure (「もしかして…」)."""

from __future__ import annotations

from typing import Any

from bot.messages import Choice, Reply
from faq.kb import Entry
from faq.matcher import Band
from intents.base import Outcome, Turn
from intents.handoff import MISSES_BEFORE_OFFER, offer_choice
from intents.language import switch_choice
from intents.understanding import Meaning

# Entries after which "sign up" is the obvious next step.
SIGNUP_TOPICS = ("tours",)
SIGNUP_HINTS = ("tour", "meeting", "signup", "visit")


def answer_reply(turn: Turn, entry: Entry) -> Reply:
    choices: tuple[Choice, ...] = (turn.menu_choice(),)
    if entry.topic in SIGNUP_TOPICS or (
        entry.topic == "company" and any(h in entry.id for h in SIGNUP_HINTS)
    ):
        choices = (Choice(turn.say("signup.btn.signup"), "signup:start"), *choices)
    return Reply(entry.answer_in(turn.lang), choices=(*choices, *language_offer(turn)))


def language_offer(turn: Turn) -> tuple[Choice, ...]:
    """Answered in the language of the question, not the one chosen earlier: offer to make it
    the language from now on."""
    if turn.lang != turn.profile.language:
        return (switch_choice(turn, turn.lang),)
    return ()


def suggestion_choices(turn: Turn, meanings: tuple[Meaning, ...]) -> tuple[Choice, ...]:
    """「もしかして」: each command or entry the person may have meant, as a button."""
    kb = turn.services.matcher.kb
    out: list[Choice] = []
    for m in meanings[: turn.services.suggestions]:
        if m.command is not None:
            out.append(Choice(turn.say(f"command.{m.command.id}"), m.command.action))
        elif (entry := kb.get(m.id)) is not None:
            out.append(Choice(entry.title_in(turn.lang), f"faq:{entry.id}"))
    return tuple(out)


class FaqAnswer:
    name = "faq"

    def claims(self, turn: Turn) -> bool:
        if turn.postback is not None:
            return turn.postback.startswith("faq:")
        return turn.is_text and turn.understood.band is not Band.UNKNOWN

    def respond(self, turn: Turn) -> Outcome:
        if turn.postback is not None:
            entry = turn.services.matcher.kb.get(turn.postback.split(":", 1)[1])
            if entry is None:
                return Outcome([Reply(turn.say("faq_unknown_entry"), choices=turn.topic_choices())])
            return Outcome([answer_reply(turn, entry)], state=missed(turn, False))
        meant = turn.understood
        top = meant.top
        if meant.band is Band.ANSWER and top is not None and top.command is None:
            entry = turn.services.matcher.kb.get(top.id)
            if entry is not None:
                return Outcome([answer_reply(turn, entry)], state=missed(turn, False))
        result = turn.faq
        choices = suggestion_choices(turn, meant.meanings)
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
