"""Greeting, welcome on follow, the topic menu, and a short answer to thanks."""

from __future__ import annotations

from bot.messages import Choice, EventKind, Reply
from intents.base import Outcome, Turn

# Greetings answered in kind: the person's word for the time of day, or a plain hello.
GREETING_KINDS = (
    ("greeting.morning", ("おはよう", "good morning", "morning")),
    ("greeting.evening", ("こんばんは", "こんばんわ", "good evening", "evening")),
    ("greeting.first", ("はじめまして", "nice to meet")),
)


def greeting_key(turn: Turn) -> str:
    for key, words in GREETING_KINDS:
        if any(w in turn.folded for w in words):
            return key
    return "greeting.day"


def welcome_replies(turn: Turn) -> list[Reply]:
    city = turn.services.city_name.get(turn.lang) or turn.services.city_name["ja"]
    other = Choice(turn.say("choice_other_language"), "lang:en" if turn.lang == "ja" else "lang:ja")
    choices = (*turn.topic_choices(), *turn.action_choices(), other)
    greeting = turn.say(greeting_key(turn)) if turn.is_text else turn.say("greeting.day")
    return [Reply(turn.say("welcome", city=city, greeting=greeting), choices=choices)]


class Welcome:
    name = "welcome"

    def claims(self, turn: Turn) -> bool:
        return turn.incoming.kind is EventKind.FOLLOW or turn.command == "start"

    def respond(self, turn: Turn) -> Outcome:
        return Outcome(welcome_replies(turn))


class Menu:
    name = "menu"

    def claims(self, turn: Turn) -> bool:
        return turn.command == "menu"

    def respond(self, turn: Turn) -> Outcome:
        choices = (*turn.topic_choices(), *turn.action_choices())
        return Outcome([Reply(turn.say("menu_prompt"), choices=choices)])


class Thanks:
    name = "thanks"

    def claims(self, turn: Turn) -> bool:
        return turn.command == "thanks"

    def respond(self, turn: Turn) -> Outcome:
        return Outcome([Reply(turn.say("thanks"), choices=(turn.menu_choice(),))])
