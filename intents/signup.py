"""The tour sign-up conversation: an explicit table of steps per form (individual, company).

The half-filled form lives in the conversation state (the database), so a restart, another
web process or a day's pause loses nothing. At any step a person may go back, cancel, switch
language or ask an FAQ question (answered, then the step is asked again).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.messages import Choice, EventKind, Reply
from faq.matcher import Band
from faq.normalize import clear_language, fold
from intents import validate
from intents.base import Outcome, Turn, keyword_set
from intents.notices import short_label, tour_dates, tour_label, when
from intents.ports import Booked, BookingResult, TourView
from intents.understanding import InForm

BACK = keyword_set("戻る", "もどる", "back", "前へ", "戻って")
_QUESTION = re.compile(r"[?？]|(ですか|ますか|でしょうか|教えて|知りたい|どこ|いつ|いくら)$")

WORK = ("telework", "job_seeking", "other")
INTERESTS = ("housing", "childcare", "telework", "farming", "nature", "community")
PURPOSES = ("satellite_office", "workation", "relocation", "business_matching")
FORMATS = ("site_visit", "online_meeting")
MAX_PARTY = 6


@dataclass
class Form:
    """The form as stored in state["form"]."""

    type: str  # individual | company
    key: str  # idempotency key of the eventual sign-up
    step: str
    answers: dict[str, Any]
    history: list[str]
    editing: bool = False
    touched: str = ""
    pending: str = ""  # "resume" | "full": a question outside the step table is open

    @classmethod
    def new(cls, form_type: str, first: str, now: datetime) -> Form:
        return cls(form_type, uuid.uuid4().hex, first, {}, [], touched=now.isoformat())

    @classmethod
    def load(cls, data: Any) -> Form | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(**data)
        except TypeError:
            return None  # a form saved by an older version: start over rather than crash

    def dump(self) -> dict[str, Any]:
        return dict(self.__dict__)


Ask = Callable[[Turn, Form], Awaitable[Reply]]
# Parse returns the value to store, or a message key explaining why it was refused.
Parse = Callable[[Turn, Form, str | None], Awaitable["Parsed"]]


@dataclass(frozen=True)
class Parsed:
    value: Any = None
    error: str | None = None
    error_values: dict[str, Any] | None = None
    stay: bool = False  # accepted, but ask the same step again (multi-select, slots)


@dataclass(frozen=True)
class Step:
    name: str
    ask: Ask
    parse: Parse
    applies: Callable[[Form], bool] = lambda form: True
    free_text: bool = False  # any text is a valid answer: only clear questions go to the FAQ
    # Whether typed text is a valid answer to this step (checked before a command may take
    # the turn); steps answered with buttons accept no free text.
    accepts: Callable[[Turn], bool] = lambda turn: False
    # Answers that no longer hold when this one changes (asked again by the form).
    resets: tuple[str, ...] = ()


# --- asking ---------------------------------------------------------------------------------


def _reply(turn: Turn, key: str, options: list[tuple[str, str]], **values: Any) -> Reply:
    back = (turn.say("signup.btn.back"), "form:back")
    cancel = (turn.say("signup.btn.cancel"), "cancel")
    choices = [Choice(label, value) for label, value in [*options, back, cancel]]
    return Reply(turn.say(key, **values), choices=tuple(choices))


def ask_text(key: str, extra: Callable[[Turn], list[tuple[str, str]]] | None = None) -> Ask:
    async def ask(turn: Turn, form: Form) -> Reply:
        return _reply(turn, key, extra(turn) if extra else [])

    return ask


def ask_options(key: str, options: tuple[str, ...], group: str) -> Ask:
    async def ask(turn: Turn, form: Form) -> Reply:
        opts = [(turn.say(f"signup.opt.{group}.{o}"), f"form:{o}") for o in options]
        return _reply(turn, key, opts)

    return ask


def ask_count(key: str, low: int, high: int) -> Ask:
    async def ask(turn: Turn, form: Form) -> Reply:
        return _reply(turn, key, [(str(n), f"form:{n}") for n in range(low, high + 1)])

    return ask


async def ask_interests(turn: Turn, form: Form) -> Reply:
    chosen = set(form.answers.get("interests", []))
    opts = [
        (("✓ " if o in chosen else "") + turn.say(f"signup.opt.interests.{o}"), f"form:toggle:{o}")
        for o in INTERESTS
    ]
    opts.append((turn.say("signup.btn.done"), "form:done"))
    return _reply(turn, "signup.ask.interests", opts)


def _tour_kinds(form: Form) -> tuple[str, ...]:
    if form.type == "individual":
        return ("experience",)
    return (str(form.answers.get("format", "site_visit")),)


async def ask_tour(turn: Turn, form: Form) -> Reply:
    tours = await turn.desk.open_tours(_tour_kinds(form))
    lines = [turn.say("signup.choose_tour")]
    opts = []
    for n, tour in enumerate(tours[:10], start=1):
        lines.append(f"{n}. " + _tour_line(turn, tour))
        opts.append((short_label(tour, turn.services.tz, turn.lang), f"form:tour:{tour.id}"))
    back = (turn.say("signup.btn.back"), "form:back")
    cancel = (turn.say("signup.btn.cancel"), "cancel")
    choices = tuple(Choice(label, value) for label, value in [*opts, back, cancel])
    return Reply("\n".join(lines), choices=choices)


def _tour_line(turn: Turn, tour: TourView) -> str:
    dates = tour_dates(tour, turn.services.tz, turn.lang)
    return turn.say(
        "signup.tour_line", title=tour.title_in(turn.lang), dates=dates, seats=tour.seats_left
    )


async def ask_slots(turn: Turn, form: Form) -> Reply:
    slots = form.answers.get("slots", [])
    opts = [(turn.say("signup.btn.done"), "form:done")] if len(slots) >= 2 else []
    return _reply(turn, "signup.ask.slots", opts, count=len(slots) + 1)


async def ask_note(turn: Turn, form: Form) -> Reply:
    return _reply(turn, "signup.ask.note", [(turn.say("signup.btn.none"), "form:none")])


async def ask_consent(turn: Turn, form: Form) -> Reply:
    notice = turn.services.privacy_notice.get(turn.lang) or turn.services.privacy_notice["ja"]
    return _reply(
        turn, "signup.ask.consent", [(turn.say("signup.btn.agree"), "form:agree")], notice=notice
    )


async def ask_confirm(turn: Turn, form: Form) -> Reply:
    summary = await summarize(turn, form)
    options = [
        Choice(turn.say("signup.btn.confirm"), "form:confirm"),
        Choice(turn.say("signup.btn.edit"), "form:edit"),
        Choice(turn.say("signup.btn.cancel"), "cancel"),
    ]
    return Reply(turn.say("signup.confirm", summary=summary), choices=tuple(options))


# --- parsing --------------------------------------------------------------------------------


def _value(postback: str | None) -> str | None:
    return postback.split(":", 1)[1] if postback and postback.startswith("form:") else None


def parse_with(check: Callable[[str], Any], error: str, limit: int = 200) -> Parse:
    async def parse(turn: Turn, form: Form, postback: str | None) -> Parsed:
        if postback is not None or len(turn.text) > limit:
            return Parsed(error=error)
        value = check(turn.text)
        return Parsed(error=error) if value is None else Parsed(value)

    return parse


def accept_with(check: Callable[[str], Any], limit: int = 200) -> Callable[[Turn], bool]:
    return lambda turn: len(turn.text) <= limit and check(turn.text) is not None


def accept_count(low: int, high: int) -> Callable[[Turn], bool]:
    return lambda turn: validate.count(turn.text, low, high) is not None


def accept_option(options: tuple[str, ...], group: str) -> Callable[[Turn], bool]:
    def accepts(turn: Turn) -> bool:
        labels = {
            fold(turn.services.catalog.text(f"signup.opt.{group}.{o}", lang))
            for o in options
            for lang in ("ja", "en")
        }
        return turn.folded in labels

    return accepts


def accept_slot(turn: Turn) -> bool:
    return validate.slot(turn.text, turn.now, turn.services.tz) is not None


CONSENT_WORDS = keyword_set("同意する", "同意します", "同意", "はい", "i agree", "agree", "yes")


def parse_option(options: tuple[str, ...], group: str) -> Parse:
    async def parse(turn: Turn, form: Form, postback: str | None) -> Parsed:
        picked = _value(postback)
        if picked is None:
            # Typed instead of pressed: accept the option's label in either language.
            for option in options:
                labels = {
                    turn.services.catalog.text(f"signup.opt.{group}.{option}", lang)
                    for lang in ("ja", "en")
                }
                if turn.folded in {fold(label) for label in labels}:
                    picked = option
        if picked in options:
            return Parsed(picked)
        return Parsed(error="signup.invalid.choice")

    return parse


def parse_count(low: int, high: int) -> Parse:
    async def parse(turn: Turn, form: Form, postback: str | None) -> Parsed:
        raw = _value(postback) if postback else turn.text
        value = validate.count(raw or "", low, high)
        if value is None:
            return Parsed(error="signup.invalid.count", error_values={"low": low, "high": high})
        return Parsed(value)

    return parse


async def parse_children(turn: Turn, form: Form, postback: str | None) -> Parsed:
    parsed = await parse_count(0, MAX_PARTY - 1)(turn, form, postback)
    if parsed.error is None and int(form.answers.get("adults", 1)) + int(parsed.value) > MAX_PARTY:
        return Parsed(error="signup.invalid.party")
    return parsed


async def parse_adults(turn: Turn, form: Form, postback: str | None) -> Parsed:
    parsed = await parse_count(1, MAX_PARTY)(turn, form, postback)
    children = int(form.answers.get("children", 0))
    if parsed.error is None and int(parsed.value) + children > MAX_PARTY:
        return Parsed(error="signup.invalid.party")
    return parsed


async def parse_tour(turn: Turn, form: Form, postback: str | None) -> Parsed:
    picked = _value(postback)
    if picked is None or not picked.startswith("tour:") or not picked[5:].isdigit():
        return Parsed(error="signup.invalid.choice")
    tour = await turn.desk.tour(int(picked[5:]))
    if tour is None or not tour.accepting(turn.now) or tour.kind not in _tour_kinds(form):
        return Parsed(error="signup.closed")
    return Parsed(tour.id)


async def parse_interests(turn: Turn, form: Form, postback: str | None) -> Parsed:
    picked = _value(postback)
    chosen = list(form.answers.get("interests", []))
    if picked == "done":
        return Parsed(chosen)
    if picked and picked.startswith("toggle:") and picked[7:] in INTERESTS:
        option = picked[7:]
        chosen = [c for c in chosen if c != option] if option in chosen else [*chosen, option]
        return Parsed(chosen, stay=True)
    return Parsed(error="signup.invalid.choice")


async def parse_note(turn: Turn, form: Form, postback: str | None) -> Parsed:
    if _value(postback) == "none" or turn.folded in keyword_set(
        "なし", "無し", "none", "no", "特になし"
    ):
        return Parsed("")
    if postback is not None:
        return Parsed(error="signup.invalid.choice")
    if len(turn.text) > 500:
        return Parsed(error="signup.invalid.note")
    return Parsed(turn.text)


async def parse_slots(turn: Turn, form: Form, postback: str | None) -> Parsed:
    slots = list(form.answers.get("slots", []))
    if _value(postback) == "done" and len(slots) >= 2:
        return Parsed(slots)
    moment = None if postback else validate.slot(turn.text, turn.now, turn.services.tz)
    if moment is None:
        return Parsed(error="signup.invalid.slot")
    slots.append(moment.isoformat())
    return Parsed(slots, stay=len(slots) < 3)


async def parse_consent(turn: Turn, form: Form, postback: str | None) -> Parsed:
    if _value(postback) == "agree" or (postback is None and turn.folded in CONSENT_WORDS):
        return Parsed(turn.now.isoformat())
    return Parsed(error="signup.invalid.consent")


async def parse_confirm(turn: Turn, form: Form, postback: str | None) -> Parsed:
    return Parsed(error="signup.invalid.choice")  # handled before parsing: confirm / edit


def _contact(text: str) -> dict[str, str] | None:
    found = validate.contact(text)
    return None if found is None else {found[0]: found[1]}


def text_step(name: str, check: Callable[[str], Any], error: str, *, free: bool = False) -> Step:
    """A step answered by typing: asked with signup.ask.<name>, checked by `check`. A free
    step (a name, a company) takes any text but a clear command; the others only valid text."""
    return Step(
        name,
        ask_text(f"signup.ask.{name}"),
        parse_with(check, error),
        free_text=free,
        accepts=(lambda turn: False) if free else accept_with(check),
    )


def count_step(name: str, low: int, high: int, parse: Parse | None = None) -> Step:
    return Step(
        name,
        ask_count(f"signup.ask.{name}", low, high),
        parse or parse_count(low, high),
        accepts=accept_count(low, high),
    )


def option_step(name: str, options: tuple[str, ...], **extra: Any) -> Step:
    return Step(
        name,
        ask_options(f"signup.ask.{name}", options, name),
        parse_option(options, name),
        accepts=accept_option(options, name),
        **extra,
    )


CONSENT = Step("consent", ask_consent, parse_consent, accepts=lambda t: t.folded in CONSENT_WORDS)
CONFIRM = Step("confirm", ask_confirm, parse_confirm)

INDIVIDUAL: tuple[Step, ...] = (
    Step("tour", ask_tour, parse_tour),
    text_step("name", validate.name, "signup.invalid.name", free=True),
    text_step("furigana", validate.furigana, "signup.invalid.furigana"),
    text_step("contact", _contact, "signup.invalid.contact"),
    count_step("adults", 1, MAX_PARTY, parse_adults),
    count_step("children", 0, MAX_PARTY - 1, parse_children),
    text_step("prefecture", validate.prefecture, "signup.invalid.prefecture"),
    option_step("work", WORK),
    Step("interests", ask_interests, parse_interests),
    Step("note", ask_note, parse_note, free_text=True),
    CONSENT,
    CONFIRM,
)

COMPANY: tuple[Step, ...] = (
    text_step("company", lambda t: validate.text_field(t, 100), "signup.invalid.name", free=True),
    text_step("contact_person", validate.name, "signup.invalid.name", free=True),
    text_step("email", validate.email, "signup.invalid.email"),
    text_step("phone", validate.phone, "signup.invalid.phone"),
    count_step("visitors", 1, 10),
    option_step("purpose", PURPOSES),
    # dates differ between visits and meetings
    option_step("format", FORMATS, resets=("tour", "slots")),
    Step("tour", ask_tour, parse_tour),
    Step(
        "slots",
        ask_slots,
        parse_slots,
        applies=lambda f: f.answers.get("format") == "online_meeting",
        accepts=accept_slot,
    ),
    Step("note", ask_note, parse_note, free_text=True),
    CONSENT,
    CONFIRM,
)

FORMS = {"individual": INDIVIDUAL, "company": COMPANY}
# Fields a person may change from the confirmation screen.
EDITABLE = {
    "individual": (
        "tour",
        "name",
        "furigana",
        "contact",
        "adults",
        "children",
        "prefecture",
        "work",
        "interests",
        "note",
    ),
    "company": (
        "company",
        "contact_person",
        "email",
        "phone",
        "visitors",
        "purpose",
        "format",
        "tour",
        "slots",
        "note",
    ),
}


def steps(form: Form) -> list[Step]:
    return [s for s in FORMS[form.type] if s.applies(form)]


def step_named(form: Form, name: str) -> Step:
    return next(s for s in FORMS[form.type] if s.name == name)


def clear(form: Form, name: str) -> None:
    """Forget a step's answer and every answer that depends on it (Step.resets)."""
    form.answers.pop(name, None)
    for dependent in step_named(form, name).resets:
        form.answers.pop(dependent, None)


def next_step(form: Form, after: str) -> str:
    names = [s.name for s in steps(form)]
    index = names.index(after) + 1 if after in names else 0
    for name in names[index:]:
        if name not in form.answers:
            return name
    return "confirm"


async def summarize(turn: Turn, form: Form) -> str:
    lines = []
    for step in steps(form):
        if step.name in ("consent", "confirm") or step.name not in form.answers:
            continue
        shown = await _show(turn, step.name, form.answers[step.name])
        lines.append(f"{turn.say(f'signup.field.{step.name}')}：{shown}")
    return "\n".join(lines)


async def _show(turn: Turn, field: str, value: Any) -> str:
    if field == "tour":
        tour = await turn.desk.tour(int(value))
        return tour_label(tour, turn.services.tz, turn.lang) if tour else "-"
    if field == "contact" and isinstance(value, dict):
        return " ".join(str(v) for v in value.values())
    if field in ("work", "purpose", "format"):
        return turn.say(f"signup.opt.{field}.{value}")
    if field == "interests":
        return "、".join(turn.say(f"signup.opt.interests.{v}") for v in value) or "-"
    if field == "slots":
        return " / ".join(
            when(datetime.fromisoformat(v), turn.services.tz, turn.lang) for v in value
        )
    return str(value) if value != "" else "-"


# --- the intent -----------------------------------------------------------------------------


def wants_signup(turn: Turn) -> bool:
    return (turn.command or "").startswith("signup:start")


# Postbacks the form answers itself; any other button (the rich menu's 「予約確認」, a
# 「もしかして」 suggestion) is honoured while the form waits.
FORM_POSTBACKS = ("form:", "cancel", "signup:", "lang")
# A free-text step (a name, notes) takes any text except a command this clearly meant.
FREE_TEXT_CONFIDENCE = 0.9


def typed_answer(turn: Turn, form: Form) -> bool:
    """A typed "2" the engine matched to a button offered by something else (a command answered
    while the form waited) that is a valid answer to the form's step: the step takes it."""
    return (
        turn.incoming.kind is EventKind.TEXT
        and turn.postback is not None
        and not turn.postback.startswith(FORM_POSTBACKS)
        and not form.pending
        and step_named(form, form.step).accepts(turn)
    )


def interruption(turn: Turn) -> str | None:
    """The command to carry out instead of taking this message as the open form's answer,
    or None. A command wins when the text is not a valid answer to the step; on a free-text
    step only a clear command wins."""
    form = Form.load(turn.state.get("form"))
    if form is None or turn.incoming.kind not in (EventKind.TEXT, EventKind.POSTBACK):
        return None
    if turn.postback is not None:
        if turn.postback.startswith(FORM_POSTBACKS) or typed_answer(turn, form):
            return None
        return turn.postback
    meant = turn.understood.command
    if meant is None or meant.in_form is not InForm.ACT:
        return None
    step = step_named(form, form.step)
    if turn.understood.exact or form.pending or step.name == "confirm":
        return meant.action
    if step.free_text:
        return meant.action if turn.understood.confidence >= FREE_TEXT_CONFIDENCE else None
    return None if step.accepts(turn) else meant.action


def abandon_question(turn: Turn) -> Outcome:
    """「申し込みをやめますか？」: asked before a half-filled form is thrown away on words the
    bot understood rather than the form's own 「やめる」 button."""
    options = (
        Choice(turn.say("form_abandon_btn.yes"), "cancel"),
        Choice(turn.say("signup.btn.continue"), "form:continue"),
    )
    return Outcome([Reply(turn.say("form_abandon_confirm"), choices=options)])


def resume_offer(turn: Turn) -> Choice:
    return Choice(turn.say("signup.btn.continue"), "form:continue")


async def ask_again(turn: Turn) -> Reply | None:
    """The open form's current question, asked again after something else was answered."""
    form = Form.load(turn.state.get("form"))
    if form is None or form.pending:
        return None
    return await step_named(form, form.step).ask(turn, form)


class TourSignup:
    name = "signup"

    def claims(self, turn: Turn) -> bool:
        if Form.load(turn.state.get("form")) is not None:
            return True
        if turn.postback is not None and turn.postback.startswith("form:"):
            return True  # e.g. a second 「確定」 after the form was already confirmed
        return wants_signup(turn)

    async def respond(self, turn: Turn) -> Outcome:
        form = Form.load(turn.state.get("form"))
        if form is not None and typed_answer(turn, form):
            turn = dataclasses.replace(turn, postback=None)
        if form is None:
            if turn.postback == "form:confirm" and turn.state.get("confirmed_form"):
                return await self._already(turn, str(turn.state["confirmed_form"]))
            if turn.postback is not None and turn.postback.startswith("form:"):
                return Outcome(
                    [Reply(turn.say("bookings.not_found"), choices=turn.topic_choices())]
                )
            return await self._start(turn)
        if wants_signup(turn) and turn.postback is not None:
            # 申し込む pressed again (perhaps an old button higher up in the chat): the
            # half-filled form is kept, unless the button asks for the other form.
            kind = turn.postback.split(":")[2] if turn.postback.count(":") == 2 else form.type
            if kind in FORMS and kind != form.type:
                return await self._start(turn)
            return await self._ask(turn, form, [Reply(turn.say("form_already_signing_up"))])
        return await self._continue(turn, form)

    async def _start(self, turn: Turn) -> Outcome:
        kind = (
            turn.postback.split(":")[2] if turn.postback and turn.postback.count(":") == 2 else ""
        )
        if kind not in FORMS:
            kind = "company" if turn.profile.audience == "company" else "individual"
        form = Form.new(kind, FORMS[kind][0].name, turn.now)
        if not await turn.desk.open_tours(
            ("experience",) if kind == "individual" else ("site_visit", "online_meeting")
        ):
            return Outcome(
                [Reply(turn.say("signup.no_tours"), choices=(turn.menu_choice(),))],
                state=self._without_form(turn),
            )
        return await self._ask(turn, form, [])

    async def _continue(self, turn: Turn, form: Form) -> Outcome:
        if turn.incoming.kind is EventKind.FOLLOW:
            # The web chat reopened (or the person re-added the bot): not an answer.
            return await self._ask(turn, form, [Reply(turn.say("form_welcome_back"))])
        touched = datetime.fromisoformat(form.touched) if form.touched else turn.now
        if form.pending == "resume":
            return await self._resume_answer(turn, form)
        if form.pending == "full":
            return await self._full_answer(turn, form)
        if turn.now - touched > timedelta(hours=turn.services.resume_after_hours):
            form.pending = "resume"
            options = (
                Choice(turn.say("signup.btn.continue"), "form:continue"),
                Choice(turn.say("signup.btn.restart"), "form:restart"),
                Choice(turn.say("signup.btn.cancel"), "cancel"),
            )
            return self._save(turn, form, [Reply(turn.say("signup.resume"), choices=options)])

        if turn.command in ("lang:en", "lang:ja"):
            lang = (turn.command or "").split(":")[1]
            turn.lang = lang
            lead = [Reply(turn.say("language_set"))]
            return await self._ask(
                turn, form, lead, profile={"language": lang, "language_chosen": True}
            )
        if turn.postback == "form:back" or (turn.is_text and turn.folded in BACK):
            return await self._back(turn, form)
        if turn.postback == "form:continue":
            return await self._ask(turn, form, [Reply(turn.say("form_continue"))])

        step = step_named(form, form.step)
        if (
            turn.is_text
            and turn.command == "signup:start"
            and (turn.understood.exact or not step.accepts(turn))
        ):
            return await self._ask(turn, form, [Reply(turn.say("form_already_signing_up"))])
        if form.step == "confirm":
            return await self._confirm_screen(turn, form)

        if turn.is_text and self._is_question(turn, step):
            answer = turn.faq.best
            assert answer is not None
            lead = [
                # in the question's own language (the form keeps the person's)
                Reply(answer.entry.answer_in(clear_language(turn.text) or turn.lang)),
                Reply(turn.say("signup.answer_then_continue")),
            ]
            return await self._ask(turn, form, lead)

        parsed = await step.parse(turn, form, turn.postback)
        if parsed.error is not None:
            lead = [Reply(turn.say(parsed.error, **(parsed.error_values or {})))]
            return await self._ask(turn, form, lead)
        form.answers[step.name] = parsed.value
        lead = []
        if step.name == "slots" and parsed.stay:
            slot = datetime.fromisoformat(parsed.value[-1])
            lead.append(
                Reply(turn.say("signup.slot_added", slot=when(slot, turn.services.tz, turn.lang)))
            )
        if parsed.stay:
            return await self._ask(turn, form, lead)
        for dependent in step.resets:
            form.answers.pop(dependent, None)
        form.history.append(step.name)
        # The next unanswered step: after an edit from the confirmation screen that is the
        # screen itself, unless the edit emptied a dependent field (format -> date, slots).
        form.step = next_step(form, step.name)
        return await self._ask(turn, form, lead)

    def _is_question(self, turn: Turn, step: Step) -> bool:
        """A message that is clearly a question to the FAQ, not an answer to this step."""
        if turn.faq.band is not Band.ANSWER or turn.faq.best is None:
            return False
        if step.free_text or step.name in (
            "furigana",
            "prefecture",
            "contact",
            "email",
            "phone",
            "tour",
        ):
            return bool(_QUESTION.search(turn.text))
        return True

    async def _back(self, turn: Turn, form: Form) -> Outcome:
        if form.step == "confirm" and form.editing:
            form.editing = False
        if not form.history:
            return await self._ask(turn, form, [Reply(turn.say("signup.back_first"))])
        previous = form.history.pop()
        clear(form, previous)
        form.step = previous
        return await self._ask(turn, form, [])

    async def _confirm_screen(self, turn: Turn, form: Form) -> Outcome:
        if turn.postback == "form:confirm" or (
            turn.is_text and turn.folded in keyword_set("確定", "確定する", "confirm")
        ):
            return await self._book(turn, form, waitlist=False)
        if turn.postback == "form:edit" or (
            turn.is_text and turn.folded in keyword_set("修正", "修正する", "change", "edit")
        ):
            options = [
                Choice(turn.say(f"signup.field.{name}"), f"form:edit:{name}")
                for name in EDITABLE[form.type]
                if name in form.answers
            ]
            return self._save(
                turn, form, [Reply(turn.say("signup.edit_which"), choices=tuple(options))]
            )
        picked = _value(turn.postback)
        if picked and picked.startswith("edit:") and picked[5:] in EDITABLE[form.type]:
            field = picked[5:]
            clear(form, field)
            form.editing = True
            form.step = field
            return await self._ask(turn, form, [])
        if turn.is_text and turn.faq.band is Band.ANSWER and turn.faq.best is not None:
            lead = [
                Reply(turn.faq.best.entry.answer_in(clear_language(turn.text) or turn.lang)),
                Reply(turn.say("signup.answer_then_continue")),
            ]
            return await self._ask(turn, form, lead)
        return await self._ask(turn, form, [Reply(turn.say("signup.invalid.choice"))])

    async def _book(self, turn: Turn, form: Form, *, waitlist: bool) -> Outcome:
        details = {k: v for k, v in form.answers.items() if k != "tour"}
        seats = self._seats(form)
        result: BookingResult = await turn.desk.book(
            tour_id=int(form.answers["tour"]),
            form=form.type,
            form_key=form.key,
            seats=seats,
            details=details,
            language=turn.lang,
            waitlist=waitlist,
        )
        if result.outcome is Booked.FULL:
            form.pending = "full"
            options = (
                Choice(turn.say("signup.btn.waitlist"), "form:waitlist"),
                Choice(turn.say("signup.field.tour"), "form:edit:tour"),
                Choice(turn.say("signup.btn.cancel"), "cancel"),
            )
            return self._save(turn, form, [Reply(turn.say("signup.full"), choices=options)])
        if result.outcome in (Booked.CLOSED, Booked.GONE):
            form.answers.pop("tour", None)
            form.step, form.editing = "tour", True
            return await self._ask(turn, form, [Reply(turn.say("signup.closed"))])
        assert result.signup is not None
        signup = result.signup
        if result.outcome is Booked.ALREADY:
            text = turn.say("signup.already", id=signup.id)
        elif result.outcome is Booked.WAITLISTED:
            text = turn.say("signup.waitlisted", id=signup.id)
        else:
            text = turn.say(
                "signup.confirmed",
                id=signup.id,
                tour=tour_label(signup.tour, turn.services.tz, turn.lang),
            )
        state = self._without_form(turn)
        state["confirmed_form"] = form.key
        return Outcome([Reply(text, choices=(turn.menu_choice(),))], state=state)

    async def _already(self, turn: Turn, key: str) -> Outcome:
        # Book with the confirmed form's key: the desk finds the existing sign-up.
        result = await turn.desk.book(
            tour_id=0,
            form="individual",
            form_key=key,
            seats=1,
            details={},
            language=turn.lang,
            waitlist=False,
        )
        if result.signup is None:
            return Outcome([Reply(turn.say("bookings.not_found"), choices=turn.topic_choices())])
        return Outcome(
            [Reply(turn.say("signup.already", id=result.signup.id), choices=(turn.menu_choice(),))]
        )

    @staticmethod
    def _seats(form: Form) -> int:
        if form.type == "individual":
            return int(form.answers.get("adults", 1)) + int(form.answers.get("children", 0))
        if form.answers.get("format") == "online_meeting":
            return 1  # an online meeting takes one slot, however many people join the call
        return int(form.answers.get("visitors", 1))

    async def _full_answer(self, turn: Turn, form: Form) -> Outcome:
        form.pending = ""
        if turn.postback == "form:waitlist" or (
            turn.is_text
            and turn.folded in keyword_set("キャンセル待ちする", "はい", "yes", "join waiting list")
        ):
            return await self._book(turn, form, waitlist=True)
        form.step = "confirm"
        return await self._confirm_screen(turn, form)

    async def _resume_answer(self, turn: Turn, form: Form) -> Outcome:
        form.pending = ""
        if turn.postback == "form:restart" or (
            turn.is_text and turn.folded in keyword_set("最初から", "start over", "restart")
        ):
            fresh = Form.new(form.type, FORMS[form.type][0].name, turn.now)
            return await self._ask(turn, fresh, [Reply(turn.say("signup.start_over"))])
        return await self._ask(turn, form, [])

    async def _ask(
        self, turn: Turn, form: Form, lead: list[Reply], profile: dict[str, Any] | None = None
    ) -> Outcome:
        question = await step_named(form, form.step).ask(turn, form)
        outcome = self._save(turn, form, [*lead, question])
        outcome.profile.update(profile or {})
        return outcome

    def _save(self, turn: Turn, form: Form, replies: list[Reply]) -> Outcome:
        form.touched = turn.now.isoformat()
        state = self._without_form(turn)
        state["form"] = form.dump()
        return Outcome(replies, state=state)

    @staticmethod
    def _without_form(turn: Turn) -> dict[str, Any]:
        return {k: v for k, v in turn.state.items() if k not in ("form", "choices")}
