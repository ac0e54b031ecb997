"""Greeting, welcome on follow, the topic menu, and a short answer to thanks."""

from __future__ import annotations

from bot.messages import Choice, EventKind, Reply
from intents.base import Outcome, Turn, keyword_set

GREETINGS = keyword_set(
    "こんにちは",
    "こんばんは",
    "おはよう",
    "おはようございます",
    "はじめまして",
    "よろしく",
    "よろしくお願いします",
    "やあ",
    "どうも",
    "hello",
    "hi",
    "hey",
    "good morning",
    "good evening",
    "start",
    "/start",
    "スタート",
    "はじめる",
)
MENU = keyword_set("メニュー", "menu", "めにゅー", "トップ", "top", "/menu", "話題", "topics")
THANKS = keyword_set(
    "ありがとう",
    "ありがとうございます",
    "ありがとうございました",
    "助かりました",
    "サンキュー",
    "thanks",
    "thank you",
    "thx",
    "thank you very much",
)


def welcome_replies(turn: Turn) -> list[Reply]:
    city = turn.services.city_name.get(turn.lang) or turn.services.city_name["ja"]
    other = Choice(turn.say("choice_other_language"), "lang:en" if turn.lang == "ja" else "lang:ja")
    choices = (*turn.topic_choices(), *turn.action_choices(), other)
    return [Reply(turn.say("welcome", city=city), choices=choices)]


class Welcome:
    name = "welcome"

    def claims(self, turn: Turn) -> bool:
        if turn.incoming.kind is EventKind.FOLLOW or turn.postback == "start":
            return True
        return turn.is_text and turn.folded in GREETINGS

    def respond(self, turn: Turn) -> Outcome:
        return Outcome(welcome_replies(turn))


class Menu:
    name = "menu"

    def claims(self, turn: Turn) -> bool:
        return turn.postback == "menu" or (turn.is_text and turn.folded in MENU)

    def respond(self, turn: Turn) -> Outcome:
        choices = (*turn.topic_choices(), *turn.action_choices())
        return Outcome([Reply(turn.say("menu_prompt"), choices=choices)])


class Thanks:
    name = "thanks"

    def claims(self, turn: Turn) -> bool:
        return turn.is_text and turn.folded.rstrip("!！ 。") in THANKS

    def respond(self, turn: Turn) -> Outcome:
        return Outcome([Reply(turn.say("thanks"), choices=(turn.menu_choice(),))])
