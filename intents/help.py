"""Explain what the bot can do and how to use it."""

from __future__ import annotations

from bot.messages import Reply
from intents.base import Outcome, Turn, keyword_set

HELP = keyword_set(
    "ヘルプ", "help", "へるぷ", "使い方", "つかいかた", "/help", "?", "？", "how to use"
)


class Help:
    name = "help"

    def claims(self, turn: Turn) -> bool:
        return turn.postback == "help" or (turn.is_text and turn.folded in HELP)

    def respond(self, turn: Turn) -> Outcome:
        return Outcome([Reply(turn.say("help"), choices=turn.topic_choices())])
