"""Talking to a person: ask for staff, stay quiet while staff own the conversation, return."""

from __future__ import annotations

from bot.messages import Choice, EventKind, Reply
from intents.base import Outcome, Turn, keyword_set
from intents.signup import ask_again

BACK_TO_BOT = keyword_set("ボットに戻る", "自動応答に戻る", "back to bot", "return to bot", "bot")
# After this many questions in a row without an answer, the bot offers a person.
MISSES_BEFORE_OFFER = 2


def offer_choice(turn: Turn) -> Choice:
    return Choice(turn.say("handoff.btn.request"), "handoff:request")


class RequestPerson:
    name = "handoff"

    def claims(self, turn: Turn) -> bool:
        return turn.command == "handoff:request"

    def respond(self, turn: Turn) -> Outcome:
        # A half-filled form stays: when staff hand the conversation back, it goes on.
        state = {k: v for k, v in turn.state.items() if k != "misses"}
        reason = (
            "unanswered" if int(turn.state.get("misses", 0)) >= MISSES_BEFORE_OFFER else "asked"
        )
        return Outcome(
            [Reply(turn.say("handoff.requested"))], state=state, handoff=f"open:{reason}"
        )


class WithStaff:
    """While staff own the conversation the bot says nothing: staff read and answer it in the
    console. The person can take the bot back at any time."""

    name = "with-staff"

    def claims(self, turn: Turn) -> bool:
        return turn.in_handoff

    async def respond(self, turn: Turn) -> Outcome:
        if turn.postback == "handoff:end" or (turn.is_text and turn.folded in BACK_TO_BOT):
            question = await ask_again(turn)
            if question is not None:  # a sign-up was half-filled when staff took over
                return Outcome([Reply(turn.say("handoff.returned")), question], handoff="close")
            return Outcome(
                [Reply(turn.say("handoff.returned"), choices=turn.topic_choices())],
                handoff="close",
            )
        if turn.incoming.kind is EventKind.FOLLOW:
            # The web chat reopened: an empty page would look as if nobody is there.
            return Outcome([Reply(turn.say("handoff.waiting"))], handoff="touch")
        return Outcome([], handoff="touch")
