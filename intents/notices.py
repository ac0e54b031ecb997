"""Messages the city sends unprompted: reminders, waiting-list promotions, cancellations,
and the staff's sign-up notices. Pure functions of the tour, the sign-up and the language."""

from __future__ import annotations

from datetime import datetime, tzinfo

from bot.messages import Choice, Reply
from intents.i18n import Catalog
from intents.ports import SignupView, TourView

_WEEKDAYS_JA = "月火水木金土日"


def when(moment: datetime, tz: tzinfo, lang: str) -> str:
    local = moment.astimezone(tz)
    if lang == "en":
        return local.strftime("%a %d %b %Y %H:%M")
    weekday = _WEEKDAYS_JA[local.weekday()]
    return f"{local.year}年{local.month}月{local.day}日（{weekday}）{local:%H:%M}"


def tour_dates(tour: TourView, tz: tzinfo, lang: str) -> str:
    start, end = tour.starts_at.astimezone(tz), tour.ends_at.astimezone(tz)
    if start.date() == end.date():
        return f"{when(start, tz, lang)}–{end:%H:%M}"
    return f"{when(start, tz, lang)} – {when(end, tz, lang)}"


def tour_label(tour: TourView, tz: tzinfo, lang: str) -> str:
    return f"{tour.title_in(lang)} {tour_dates(tour, tz, lang)}"


def short_label(tour: TourView, tz: tzinfo, lang: str) -> str:
    """A button label for a tour: its start date and the title's beginning, short enough for
    every platform's buttons (LINE's quick replies take 20 characters)."""
    local = tour.starts_at.astimezone(tz)
    return f"{local.month}/{local.day} {tour.title_in(lang)}"[:20]


def reminder(
    catalog: Catalog, tour: TourView, signup: SignupView, lang: str, tz: tzinfo, now: datetime
) -> list[Reply]:
    days = max(0, (tour.starts_at.astimezone(tz).date() - now.astimezone(tz).date()).days)
    text = catalog.text(
        "reminder.text",
        lang,
        title=tour.title_in(lang),
        days=days,
        dates=tour_dates(tour, tz, lang),
        place=tour.place or "-",
    )
    choices = (
        Choice(catalog.text("reminder.btn.attend", lang), f"booking:attend:{signup.id}"),
        Choice(catalog.text("reminder.btn.cancel", lang), f"booking:cancel:{signup.id}"),
    )
    return [Reply(text, choices=choices)]


def promoted(catalog: Catalog, signup: SignupView, lang: str) -> list[Reply]:
    title = signup.tour.title_in(lang)
    return [Reply(catalog.text("notice.promoted", lang, title=title, id=signup.id))]


def tour_cancelled(catalog: Catalog, signup: SignupView, lang: str, tz: tzinfo) -> list[Reply]:
    tour = signup.tour
    text = catalog.text(
        "notice.tour_cancelled",
        lang,
        title=tour.title_in(lang),
        dates=tour_dates(tour, tz, lang),
        id=signup.id,
    )
    return [Reply(text)]


def staff_new(catalog: Catalog, signup: SignupView, tz: tzinfo) -> list[Reply]:
    status = catalog.text(f"bookings.status.{signup.status}", "ja")
    tour = tour_label(signup.tour, tz, "ja")
    text = catalog.text(
        "notice.staff_new", "ja", id=signup.id, tour=tour, seats=signup.seats, status=status
    )
    return [Reply(text)]


def staff_cancelled(catalog: Catalog, signup: SignupView, tz: tzinfo) -> list[Reply]:
    tour = tour_label(signup.tour, tz, "ja")
    return [Reply(catalog.text("notice.staff_cancelled", "ja", id=signup.id, tour=tour))]
