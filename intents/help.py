"""Explain what the bot can do and how to use it."""

from __future__ import annotations

from bot.messages import Reply
from intents.base import Outcome, Turn


class Help:
    name = "help"

    def claims(self, turn: Turn) -> bool:
        return turn.command == "help"

    def respond(self, turn: Turn) -> Outcome:
        return Outcome([Reply(turn.say("help"), choices=turn.topic_choices())])
