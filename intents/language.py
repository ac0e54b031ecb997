"""Switch the conversation between Japanese and English."""

from __future__ import annotations

from bot.messages import Choice, Reply
from intents.base import Outcome, Turn, keyword_set

TO_ENGLISH = keyword_set("English", "英語", "えいご", "eigo", "in english", "english please")
TO_JAPANESE = keyword_set("日本語", "にほんご", "Japanese", "nihongo", "ja")
ASK = keyword_set("/lang", "language", "言語", "lang")


class LanguageSwitch:
    name = "language"

    def claims(self, turn: Turn) -> bool:
        if turn.postback in ("lang:ja", "lang:en", "lang"):
            return True
        return turn.is_text and turn.folded in TO_ENGLISH | TO_JAPANESE | ASK

    def respond(self, turn: Turn) -> Outcome:
        target = self._target(turn)
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

    @staticmethod
    def _target(turn: Turn) -> str | None:
        if turn.postback in ("lang:ja", "lang:en"):
            return turn.postback.split(":", 1)[1]
        if turn.folded in TO_ENGLISH:
            return "en"
        if turn.folded in TO_JAPANESE:
            return "ja"
        return None
