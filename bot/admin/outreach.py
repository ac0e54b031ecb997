"""Between the announcement form and bot.announcements: reading a segment from the form, and
moving a scheduled announcement to "now" after staff checked it with a test."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.announcements import Segment
from bot.segments import AUDIENCES, DELIVERABLE, LANGUAGES
from bot.storage.models import Announcement
from intents.signup import INTERESTS

__all__ = ["AUDIENCES", "DELIVERABLE", "INTERESTS", "LANGUAGES", "ComposeForm", "release_now"]


class FormError(ValueError):
    """A field staff must correct: a console catalog key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class ComposeForm:
    """The compose form as typed (kept when the page is shown again) and as a Segment."""

    text_ja: str = ""
    text_en: str = ""
    link_label: str = ""
    link_url: str = ""
    channels: list[str] = field(default_factory=list)
    audiences: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    interests: list[str] = field(default_factory=list)
    tour_id: str = ""
    followed_since: str = ""  # yyyy-mm-dd, local date
    mode: str = "now"  # now | later
    send_at: str = ""  # yyyy-mm-ddThh:mm, local time

    def segment(self, tz: tzinfo) -> Segment:
        since = None
        if self.followed_since:
            try:
                since = datetime.strptime(self.followed_since, "%Y-%m-%d").replace(tzinfo=tz)
            except ValueError:
                raise FormError("ann.bad_since") from None
        tour = int(self.tour_id) if self.tour_id.isdigit() else None
        return Segment(
            channels=tuple(c for c in self.channels if c in DELIVERABLE),
            audiences=tuple(a for a in self.audiences if a in AUDIENCES),
            languages=tuple(x for x in self.languages if x in LANGUAGES),
            interests=tuple(i for i in self.interests if i in INTERESTS),
            tour_id=tour,
            followed_since=since,
        )

    def when(self, tz: tzinfo) -> datetime | None:
        """None: send at once; else the local time staff picked."""
        if self.mode != "later":
            return None
        try:
            return datetime.strptime(self.send_at, "%Y-%m-%dT%H:%M").replace(tzinfo=tz)
        except ValueError:
            raise FormError("ann.bad_send_at") from None


async def release_now(session: AsyncSession, announcement_id: int, now: datetime) -> bool:
    """Bring a scheduled (not yet started) announcement forward to now: the worker's next
    tick sends it. False if it already started, was sent or was cancelled."""
    result = await session.execute(
        update(Announcement)
        .where(Announcement.id == announcement_id, Announcement.status == "scheduled")
        .values(scheduled_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))
