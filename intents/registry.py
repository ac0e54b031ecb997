"""The one ordered list of intents: the first whose claims() is true handles the turn."""

from __future__ import annotations

from intents.base import Intent
from intents.bookings import MyBookings
from intents.cancel import Cancel
from intents.fallback import DontKnow, Unfollow, Unreadable
from intents.faq_answer import FaqAnswer
from intents.handoff import RequestPerson, WithStaff
from intents.help import Help
from intents.interrupt import FormInterrupt
from intents.language import LanguageSwitch
from intents.privacy import MyData
from intents.signup import TourSignup
from intents.topics import TopicMenu
from intents.welcome import Menu, Thanks, Welcome


def default_intents() -> list[Intent]:
    # What each intent claims comes from the understanding layer (turn.command: a button, an
    # exact shortcut or a command understood from free words). Order matters: cancel must work
    # mid-form, then a command that interrupts the form, then the form, which owns every other
    # turn while it is open. The FAQ goes after every command so "menu" is never answered as
    # a question.
    commands: list[Intent] = [
        MyBookings(),
        MyData(),
        RequestPerson(),
        LanguageSwitch(),
        Help(),
        Welcome(),
        Menu(),
        Thanks(),
        TopicMenu(),
        FaqAnswer(),
    ]
    return [
        Unfollow(),
        WithStaff(),  # while staff answer, nothing else may speak
        Unreadable(),
        Cancel(),
        FormInterrupt(commands),
        TourSignup(),
        *commands,
        DontKnow(),
    ]
