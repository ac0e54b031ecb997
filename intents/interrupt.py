"""Commands honoured inside a half-filled form: 「担当者と話したい」 at the name step reaches a
person instead of being stored as a name. The form waits; a 「続ける」 button picks it up."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence

from bot.messages import Reply
from intents.base import Intent, Outcome, Turn
from intents.signup import ask_again, interruption, resume_offer

# Buttons an answer may lose when the form's question follows it (it has its own).
SPARE_CHOICES = frozenset({"menu", "signup:start", "lang:ja", "lang:en"})


class FormInterrupt:
    name = "form-interrupt"

    def __init__(self, handlers: Sequence[Intent]) -> None:
        self.handlers = list(handlers)

    def claims(self, turn: Turn) -> bool:
        return self._handler(turn) is not None

    def _handler(self, turn: Turn) -> tuple[Intent, Turn] | None:
        """Who carries out the command, and the turn as if its button had been pressed (the
        handlers read turn.command). None for anything no command handles (a stale or forged
        button): the form answers that itself."""
        action = interruption(turn)
        if action is None:
            return None
        meant = dataclasses.replace(turn, postback=action)
        intent = next((i for i in self.handlers if i.claims(meant)), None)
        return (intent, meant) if intent is not None else None

    async def respond(self, turn: Turn) -> Outcome:
        found = self._handler(turn)
        assert found is not None  # claims() said so
        intent, meant = found
        result = intent.respond(meant)
        outcome = await result if inspect.isawaitable(result) else result
        return await self._keep_form(turn, outcome)

    @staticmethod
    async def _keep_form(turn: Turn, outcome: Outcome) -> Outcome:
        state = outcome.state if outcome.state is not None else dict(turn.state)
        if "form" not in state or outcome.handoff is not None or not outcome.replies:
            return outcome  # the command ended the form, or staff take over
        last = outcome.replies[-1]
        if any(c.value == "form:continue" for c in last.choices):
            return outcome  # the command itself offers to go on with the form
        if all(c.value in SPARE_CHOICES for c in last.choices):
            # An answer with nothing to tap but the menu: ask the form's question again, as
            # after a question typed mid-form.
            question = await ask_again(turn)
            if question is not None:
                outcome.replies[-1] = Reply(last.text, links=last.links)
                outcome.replies += [Reply(turn.say("signup.answer_then_continue")), question]
                return outcome
        outcome.replies[-1] = Reply(
            f"{last.text}\n\n{turn.say('form_paused')}",
            choices=(*last.choices, resume_offer(turn)),
            links=last.links,
        )
        return outcome
