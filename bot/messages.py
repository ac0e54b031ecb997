"""Channel-neutral message types: what a channel hands the engine, and what it gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class EventKind(StrEnum):
    TEXT = "text"
    POSTBACK = "postback"  # a button/quick-reply/inline-keyboard press carrying a value
    FOLLOW = "follow"  # the person added the bot (LINE follow, Telegram /start)
    UNFOLLOW = "unfollow"  # the person blocked or removed the bot
    MEDIA = "media"  # sticker, image, video, audio, file, location: nothing we can read


@dataclass(frozen=True)
class Incoming:
    channel: str  # "line", "telegram", "web", "console", "test"
    user_id: str  # the platform's id for the person, unique within the channel
    kind: EventKind
    text: str = ""
    postback: str | None = None
    language_hint: str | None = None  # from the platform, e.g. Telegram's language_code
    event_id: str | None = None  # the platform's event id, for dropping redeliveries
    timestamp: datetime | None = None


@dataclass(frozen=True)
class Choice:
    label: str  # what the person sees on the button
    value: str  # what comes back as the postback when they press it


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Reply:
    text: str
    choices: tuple[Choice, ...] = field(default_factory=tuple)
    links: tuple[Link, ...] = field(default_factory=tuple)
