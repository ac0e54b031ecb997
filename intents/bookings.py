"""「予約確認」 / "my bookings": see, move and cancel sign-ups; answers to reminder buttons."""

from __future__ import annotations

from bot.messages import Choice, Reply
from intents.base import Outcome, Turn
from intents.notices import short_label, tour_label
from intents.ports import Booked, SignupView
from intents.signup import abandon_question

# Row ids are 32-bit integers on PostgreSQL: a larger number in a forged postback names no
# booking, and must be "not found" rather than an error from the database.
MAX_ID = 2**31 - 1


def _id(value: str, prefix: str = "") -> int | None:
    rest = value.removeprefix(prefix)
    # isascii: "²".isdigit() is true but int("²") fails
    if not (rest.isascii() and rest.isdigit() and len(rest) <= 10):
        return None
    number = int(rest)
    return number if 0 < number <= MAX_ID else None


class MyBookings:
    name = "bookings"

    def claims(self, turn: Turn) -> bool:
        return (turn.command or "").startswith("booking:")

    async def respond(self, turn: Turn) -> Outcome:
        pb = turn.command or "booking:list"
        if pb == "booking:cancel-any":
            return await cancel_any(turn, await turn.desk.my_signups())
        if pb == "booking:move-any":
            return await move_any(turn, await turn.desk.my_signups())
        if pb.startswith("booking:attend:") and (sid := _id(pb, "booking:attend:")) is not None:
            signup = await turn.desk.mark_attending(sid)
            key = "bookings.attending" if signup else "bookings.not_found"
            return Outcome([Reply(turn.say(key), choices=(turn.menu_choice(),))])
        if pb.startswith("booking:cancel:") and (sid := _id(pb, "booking:cancel:")) is not None:
            return await ask_cancel(turn, sid)
        if (
            pb.startswith("booking:cancel-yes:")
            and (sid := _id(pb, "booking:cancel-yes:")) is not None
        ):
            cancelled = await turn.desk.cancel_signup(sid)
            key = "bookings.cancelled" if cancelled else "bookings.not_found"
            return Outcome([Reply(turn.say(key, id=sid), choices=(turn.menu_choice(),))])
        if pb.startswith("booking:move:") and (sid := _id(pb, "booking:move:")) is not None:
            return await choose_date(turn, sid)
        if pb.startswith("booking:moveto:"):
            sid_s, _, tour_s = pb.removeprefix("booking:moveto:").partition(":")
            if (sid := _id(sid_s)) is not None and (tour_id := _id(tour_s)) is not None:
                return await self._move(turn, sid, tour_id)
        return await self._list(turn)

    async def _list(self, turn: Turn) -> Outcome:
        signups = await turn.desk.my_signups()
        if not signups:
            return Outcome([Reply(turn.say("bookings.none"), choices=turn.topic_choices())])
        lines = [turn.say("bookings.list")]
        choices: list[Choice] = []
        for s in signups:
            lines.append(_item(turn, s))
            choices.append(Choice(turn.say("bookings.btn.move", id=s.id), f"booking:move:{s.id}"))
            choices.append(
                Choice(turn.say("bookings.btn.cancel", id=s.id), f"booking:cancel:{s.id}")
            )
        return Outcome([Reply("\n".join(lines), choices=(*choices[:12], turn.menu_choice()))])

    async def _move(self, turn: Turn, signup_id: int, tour_id: int) -> Outcome:
        result = await turn.desk.move_signup(signup_id, tour_id)
        if result.outcome in (Booked.CONFIRMED, Booked.ALREADY) and result.signup is not None:
            tour = tour_label(result.signup.tour, turn.services.tz, turn.lang)
            return Outcome(
                [
                    Reply(
                        turn.say("bookings.moved", id=signup_id, tour=tour),
                        choices=(turn.menu_choice(),),
                    )
                ]
            )
        key = {Booked.FULL: "signup.full", Booked.CLOSED: "signup.closed"}.get(
            result.outcome, "bookings.not_found"
        )
        if key == "signup.full":
            # Moving does not join a waiting list: keep the current seat and say so.
            return Outcome([Reply(turn.say("signup.closed"), choices=(turn.menu_choice(),))])
        return Outcome([Reply(turn.say(key), choices=(turn.menu_choice(),))])


async def ask_cancel(turn: Turn, signup_id: int) -> Outcome:
    mine = {s.id: s for s in await turn.desk.my_signups()}
    signup = mine.get(signup_id)
    if signup is None:
        return Outcome([Reply(turn.say("bookings.not_found"), choices=(turn.menu_choice(),))])
    tour = tour_label(signup.tour, turn.services.tz, turn.lang)
    options = (
        Choice(turn.say("signup.yes_no.yes"), f"booking:cancel-yes:{signup_id}"),
        Choice(turn.say("signup.yes_no.no"), "booking:list"),
    )
    return Outcome(
        [Reply(turn.say("bookings.confirm_cancel", id=signup_id, tour=tour), choices=options)]
    )


async def choose_date(turn: Turn, signup_id: int) -> Outcome:
    mine = {s.id: s for s in await turn.desk.my_signups()}
    signup = mine.get(signup_id)
    if signup is None:
        return Outcome([Reply(turn.say("bookings.not_found"), choices=(turn.menu_choice(),))])
    tours = [t for t in await turn.desk.open_tours((signup.tour.kind,)) if t.id != signup.tour.id]
    if not tours:
        return Outcome([Reply(turn.say("signup.no_tours"), choices=(turn.menu_choice(),))])
    choices = tuple(
        Choice(
            short_label(t, turn.services.tz, turn.lang),
            f"booking:moveto:{signup_id}:{t.id}",
        )
        for t in tours[:10]
    )
    return Outcome(
        [Reply(turn.say("bookings.choose_new_date"), choices=(*choices, turn.menu_choice()))]
    )


async def cancel_any(turn: Turn, signups: list[SignupView]) -> Outcome:
    """「予約をキャンセルしたい」 in any wording: with one booking, confirm it; with several,
    ask which; with none, say so and offer to sign up."""
    if len(signups) == 1:
        return await ask_cancel(turn, signups[0].id)
    return _which(turn, signups, "cancel")


async def move_any(turn: Turn, signups: list[SignupView]) -> Outcome:
    if len(signups) == 1:
        return await choose_date(turn, signups[0].id)
    return _which(turn, signups, "move")


def _item(turn: Turn, signup: SignupView) -> str:
    """One sign-up as a line: reference, tour and dates, status."""
    tour = tour_label(signup.tour, turn.services.tz, turn.lang)
    status = turn.say(f"bookings.status.{signup.status}")
    return turn.say("bookings.item", id=signup.id, tour=tour, status=status)


def _which(turn: Turn, signups: list[SignupView], action: str) -> Outcome:
    if not signups and turn.state.get("form") and action == "cancel":
        return abandon_question(turn)  # 「行けなくなった」 mid-form: they mean this one
    if not signups:
        signup = Choice(turn.say("signup.btn.signup"), "signup:start")
        return Outcome(
            [Reply(turn.say("bookings.none_offer_signup"), choices=(signup, turn.menu_choice()))]
        )
    lines = [turn.say(f"bookings.which_{action}")]
    choices = []
    for s in signups[:10]:
        lines.append(_item(turn, s))
        choices.append(
            Choice(turn.say(f"bookings.btn.{action}", id=s.id), f"booking:{action}:{s.id}")
        )
    return Outcome([Reply("\n".join(lines), choices=(*choices, turn.menu_choice()))])
