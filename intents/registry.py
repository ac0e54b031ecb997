"""The one ordered list of intents: the first whose claims() is true handles the turn."""

from __future__ import annotations

from intents.base import Intent
from intents.bookings import MyBookings
from intents.cancel import Cancel
from intents.fallback import DontKnow, Unfollow, Unreadable
from intents.faq_answer import FaqAnswer
from intents.handoff import RequestPerson, WithStaff
from intents.help import Help
from intents.language import LanguageSwitch
from intents.privacy import MyData
from intents.signup import TourSignup
from intents.topics import TopicMenu
from intents.welcome import Menu, Thanks, Welcome


def default_intents() -> list[Intent]:
    # Order matters: cancel must work mid-form, so it comes before the sign-up form, which
    # then owns every turn while a form is open (it handles language, back and FAQ questions
    # itself and asks its step again). The FAQ goes after every exact keyword so "menu" is
    # never answered as a question.
    return [
        Unfollow(),
        WithStaff(),  # while staff answer, nothing else may speak
        Unreadable(),
        Cancel(),
        TourSignup(),
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
        DontKnow(),
    ]
