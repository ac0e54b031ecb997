"""What intents may ask of storage about tours and sign-ups, without knowing SQL.

The engine hands each turn a `TourDesk` bound to that turn's transaction, so a booking and
the conversation state it comes from are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

TOUR_KINDS = ("experience", "site_visit", "online_meeting")


@dataclass(frozen=True)
class TourView:
    id: int
    kind: str  # experience | site_visit | online_meeting
    title: Mapping[str, str]  # ja, en
    description: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    place: str
    capacity: int
    seats_left: int
    deadline: datetime
    status: str  # open | closed | cancelled

    def title_in(self, lang: str) -> str:
        return self.title.get(lang) or self.title["ja"]

    def accepting(self, now: datetime) -> bool:
        return self.status == "open" and now < self.deadline and now < self.starts_at


@dataclass(frozen=True)
class SignupView:
    id: int
    tour: TourView
    form: str  # individual | company
    status: str  # confirmed | waitlisted | cancelled
    seats: int
    details: Mapping[str, Any]
    form_key: str
    created_at: datetime


class Booked(StrEnum):
    CONFIRMED = "confirmed"
    WAITLISTED = "waitlisted"
    ALREADY = "already"  # this form was confirmed before (double tap, redelivery)
    FULL = "full"  # not enough seats; nothing stored, the person may join the waiting list
    CLOSED = "closed"  # the tour closed, was cancelled or its deadline passed meanwhile
    GONE = "gone"  # the tour no longer exists


@dataclass(frozen=True)
class BookingResult:
    outcome: Booked
    signup: SignupView | None = None


class TourDesk(Protocol):
    async def open_tours(self, kinds: Sequence[str]) -> list[TourView]:
        """Tours of these kinds still taking sign-ups, soonest first."""
        ...

    async def tour(self, tour_id: int) -> TourView | None: ...

    async def book(
        self,
        *,
        tour_id: int,
        form: str,
        form_key: str,
        seats: int,
        details: Mapping[str, Any],
        language: str,
        waitlist: bool,
    ) -> BookingResult:
        """Confirm if seats remain (checked under a lock, so the last seat is sold once),
        else FULL — or WAITLISTED when `waitlist` is true. Idempotent on form_key."""
        ...

    async def my_signups(self) -> list[SignupView]:
        """This person's confirmed and waiting sign-ups for tours not yet over."""
        ...

    async def cancel_signup(self, signup_id: int) -> SignupView | None:
        """Cancel one of this person's sign-ups; promotes the waiting list. None if not theirs."""
        ...

    async def move_signup(self, signup_id: int, tour_id: int) -> BookingResult:
        """Move one of this person's sign-ups to another date, keeping the details."""
        ...

    async def mark_attending(self, signup_id: int) -> SignupView | None: ...

    async def my_data(self) -> dict[str, Any]:
        """Everything stored about this person, for 「私のデータ」."""
        ...

    async def delete_my_data(self) -> None:
        """Erase this person's sign-ups, reminders and conversation history."""
        ...
