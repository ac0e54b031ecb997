"""The one ordered list of intents: the first whose claims() is true handles the turn."""

from __future__ import annotations

from intents.base import Intent
from intents.cancel import Cancel
from intents.fallback import DontKnow, Unfollow, Unreadable
from intents.faq_answer import FaqAnswer
from intents.help import Help
from intents.language import LanguageSwitch
from intents.topics import TopicMenu
from intents.welcome import Menu, Thanks, Welcome


def default_intents() -> list[Intent]:
    # Order matters: commands that must work mid-form (cancel, language) come first, and
    # the FAQ goes after every exact keyword so "menu" is never answered as a question.
    return [
        Unfollow(),
        Unreadable(),
        Cancel(),
        LanguageSwitch(),
        Help(),
        Welcome(),
        Menu(),
        Thanks(),
        TopicMenu(),
        FaqAnswer(),
        DontKnow(),
    ]
