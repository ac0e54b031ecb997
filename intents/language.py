"""Switch the conversation between Japanese and English."""

from __future__ import annotations

from bot.messages import Choice, Reply
from intents.base import Outcome, Turn

SWITCHES = {"lang:ja": "ja", "lang:en": "en"}


def switch_choice(turn: Turn, target: str) -> Choice:
    """A button that makes `target` the person's language from now on."""
    label = turn.services.catalog.text("language_switch", target)
    return Choice(label, f"lang:{target}")


class LanguageSwitch:
    name = "language"

    def claims(self, turn: Turn) -> bool:
        return turn.command in (*SWITCHES, "lang")

    def respond(self, turn: Turn) -> Outcome:
        target = SWITCHES.get(turn.command or "")
        if target is None:
            return Outcome(
                [
                    Reply(
                        turn.say("language_prompt"),
                        choices=(Choice("日本語", "lang:ja"), Choice("English", "lang:en")),
                    )
                ]
            )
        text = turn.services.catalog.text("language_set", target)
        menu = Choice(turn.services.catalog.text("choice_menu", target), "menu")
        return Outcome(
            [Reply(text, choices=(menu,))],
            profile={"language": target, "language_chosen": True},
        )
