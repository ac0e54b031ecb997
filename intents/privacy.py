"""「私のデータ」 shows what the city holds about a person; 「データを削除」 erases it."""

from __future__ import annotations

import json

from bot.messages import Choice, Reply
from intents.base import Outcome, Turn


class MyData:
    name = "privacy"

    def claims(self, turn: Turn) -> bool:
        return (turn.command or "").startswith("privacy:")

    async def respond(self, turn: Turn) -> Outcome:
        if turn.command == "privacy:delete-yes":
            await turn.desk.delete_my_data()
            # forget: this very exchange is not written back into the log just erased.
            return Outcome([Reply(turn.say("privacy.deleted"))], state={}, forget=True)
        if turn.command == "privacy:keep":
            return Outcome([Reply(turn.say("privacy.kept"), choices=(turn.menu_choice(),))])
        if turn.command == "privacy:delete":
            options = (
                Choice(turn.say("signup.yes_no.yes"), "privacy:delete-yes"),
                Choice(turn.say("signup.yes_no.no"), "privacy:keep"),
            )
            return Outcome([Reply(turn.say("privacy.confirm_delete"), choices=options)])
        data = await turn.desk.my_data()
        shown = json.dumps(data, ensure_ascii=False, indent=1, default=str)
        options = (Choice(turn.say("privacy.btn.delete"), "privacy:delete"), turn.menu_choice())
        return Outcome([Reply(turn.say("privacy.my_data", data=shown), choices=options)])
