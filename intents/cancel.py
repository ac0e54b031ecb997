"""Drop whatever the person was in the middle of (a form, a pending question)."""

from __future__ import annotations

from bot.messages import Reply
from intents.base import Outcome, Turn, keyword_set

CANCEL = keyword_set(
    "やめる",
    "やめます",
    "キャンセル",
    "取り消し",
    "とりけし",
    "中止",
    "cancel",
    "/cancel",
    "stop",
    "quit",
)


class Cancel:
    name = "cancel"

    def claims(self, turn: Turn) -> bool:
        return turn.postback == "cancel" or (turn.is_text and turn.folded in CANCEL)

    def respond(self, turn: Turn) -> Outcome:
        busy = bool(turn.state.get("form"))
        text = turn.say("cancelled" if busy else "nothing_to_cancel")
        return Outcome([Reply(text, choices=turn.topic_choices())], state={})
