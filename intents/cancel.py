"""Drop whatever the person was in the middle of (a form, a pending question)."""

from __future__ import annotations

from bot.messages import Reply
from intents.base import Outcome, Turn, keyword_set
from intents.bookings import cancel_any
from intents.signup import abandon_question

# Exact words that drop a half-filled form at once (and the form's own 「やめる」 button).
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
        if turn.command in ("cancel", "form:abandon"):
            return True
        return turn.is_text and turn.folded in CANCEL

    async def respond(self, turn: Turn) -> Outcome:
        busy = bool(turn.state.get("form"))
        if turn.command == "form:abandon" and busy:
            return abandon_question(turn)
        if not busy and turn.is_text:
            # 「キャンセル」 typed with no form open: the FAQ tells people to send it to cancel
            # a booking.
            bookings = await turn.desk.my_signups()
            if bookings:
                return await cancel_any(turn, bookings)
        text = turn.say("cancelled" if busy else "nothing_to_cancel")
        return Outcome([Reply(text, choices=turn.topic_choices())], state={})
