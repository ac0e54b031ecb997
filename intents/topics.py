"""A topic's common questions as choices, from the menu or from a typed topic name."""

from __future__ import annotations

from bot.messages import Choice, Reply
from faq.kb import TOPICS
from intents.base import Outcome, Turn, keyword_set

# Typed words that mean "show me this topic", beside the topic's own menu labels.
ALIASES: dict[str, frozenset[str]] = {
    "housing": keyword_set("住まい", "住居", "住宅", "家", "housing", "house", "home", "homes"),
    "childcare": keyword_set(
        "子育て",
        "子育て・教育",
        "子ども",
        "子供",
        "教育",
        "childcare",
        "child care",
        "children",
        "kids",
        "schools",
    ),
    "telework": keyword_set(
        "仕事場",
        "仕事場・テレワーク",
        "テレワーク",
        "仕事",
        "telework",
        "remote work",
        "telework spaces",
        "work",
    ),
    "living": keyword_set("暮らし", "生活", "daily life", "living", "life"),
    "support": keyword_set(
        "支援制度", "支援制度・相談", "支援", "相談", "support", "support & advice"
    ),
    "tours": keyword_set("ツアー", "移住体験ツアー", "tours", "tour"),
    "company": keyword_set("企業", "企業の方へ", "法人", "company", "companies", "for companies"),
}
MAX_CHOICES = 10


class TopicMenu:
    name = "topic"

    def claims(self, turn: Turn) -> bool:
        return self._topic(turn) is not None

    def respond(self, turn: Turn) -> Outcome:
        topic = self._topic(turn) or TOPICS[0]
        label = turn.say(f"topic.{topic}")
        entries = turn.services.matcher.kb.by_topic(topic)
        if not entries:
            return Outcome(
                [Reply(turn.say("topic_empty", topic=label), choices=(turn.menu_choice(),))]
            )
        choices = tuple(Choice(e.title_in(turn.lang), f"faq:{e.id}") for e in entries[:MAX_CHOICES])
        return Outcome(
            [Reply(turn.say("topic_intro", topic=label), choices=(*choices, turn.menu_choice()))]
        )

    @staticmethod
    def _topic(turn: Turn) -> str | None:
        if turn.postback and turn.postback.startswith("topic:"):
            topic = turn.postback.split(":", 1)[1]
            return topic if topic in TOPICS else None
        if not turn.is_text:
            return None
        for topic, words in ALIASES.items():
            if turn.folded in words:
                return topic
        return None
