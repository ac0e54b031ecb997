"""The last resort: say honestly that we don't know, and how to reach a person."""

from __future__ import annotations

from bot.messages import Choice, EventKind, Reply
from intents.base import Outcome, Turn
from intents.faq_answer import missed, suggestion_choices
from intents.handoff import MISSES_BEFORE_OFFER, offer_choice


class Unreadable:
    """Stickers, images, files, locations, empty messages: say what the bot can read."""

    name = "unreadable"

    def claims(self, turn: Turn) -> bool:
        if turn.incoming.kind is EventKind.MEDIA:
            return True
        return turn.is_text and not turn.folded

    def respond(self, turn: Turn) -> Outcome:
        key = "media_not_supported" if turn.incoming.kind is EventKind.MEDIA else "empty_message"
        return Outcome([Reply(turn.say(key), choices=turn.topic_choices())])


class Unfollow:
    """The person blocked or removed the bot: nothing to say, just stop messaging them."""

    name = "unfollow"

    def claims(self, turn: Turn) -> bool:
        return turn.incoming.kind is EventKind.UNFOLLOW

    def respond(self, turn: Turn) -> Outcome:
        return Outcome([], profile={"reachable": False})


# Below "suggest" the bot says it does not know, yet the closest entries are often right (on
# the sample KB the right one is among the top three for 98 % of questions): above this
# confidence they are listed as buttons under the "don't know" instead of the topic menu.
# Chosen on the sample KB (bench/cities.py, city A): one tap 0.941 -> 0.963, the plateau.
NEARBY_FLOOR = 0.1


def nearby_entries(turn: Turn) -> tuple[Choice, ...]:
    if not (turn.is_text and turn.folded):
        return ()
    if turn.faq.confidence < NEARBY_FLOOR:
        return ()
    return suggestion_choices(turn, turn.understood.meanings)


class DontKnow:
    name = "fallback"

    def claims(self, turn: Turn) -> bool:
        return True

    def respond(self, turn: Turn) -> Outcome:
        contact = turn.services.contact.get(turn.lang) or turn.services.contact["ja"]
        unanswered = turn.faq if turn.is_text and turn.folded else None
        state = missed(turn, True)
        replies = [Reply(turn.say("dont_know", contact=contact))]
        nearby = nearby_entries(turn)
        if nearby:
            replies.append(
                Reply(turn.say("dont_know_nearby"), choices=(*nearby, turn.menu_choice()))
            )
        else:
            replies.append(Reply(turn.say("dont_know_topics"), choices=turn.topic_choices()))
        if state["misses"] >= MISSES_BEFORE_OFFER:
            replies.append(Reply(turn.say("handoff.offer"), choices=(offer_choice(turn),)))
        return Outcome(replies, state=state, unanswered=unanswered)
