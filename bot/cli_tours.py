"""Staff commands for tours and sign-ups, and the worker: `python -m bot tours|signups|worker`."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from bot.config import Settings, load_settings
from bot.engine import utc_now
from bot.runtime import Runtime, build_runtime
from bot.storage import tours as tour_ops
from intents.notices import tour_dates

Action = Callable[[Runtime, argparse.Namespace], Awaitable[int]]


def _local(value: str, settings: Settings, field: str) -> datetime:
    """'2026-12-20 13:00' in the city's time zone."""
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M", "%Y-%m-%d"):
        try:
            return datetime.strptime(value.strip(), fmt).replace(tzinfo=settings.bot.tz)
        except ValueError:
            continue
    raise tour_ops.TourError(f"{field}: expected a date like 2026-12-20 13:00 (got {value!r})")


async def tours_add(rt: Runtime, args: argparse.Namespace) -> int:
    s = rt.settings
    start = _local(args.start, s, "start")
    new = tour_ops.NewTour(
        kind=args.kind,
        title_ja=args.title_ja,
        title_en=args.title_en or "",
        starts_at=start,
        ends_at=_local(args.end, s, "end"),
        capacity=args.capacity,
        deadline=_local(args.deadline, s, "deadline") if args.deadline else start,
        place=args.place or "",
        description_ja=args.description_ja or "",
        description_en=args.description_en or "",
    )
    async with rt.sessions() as session, session.begin():
        tour = await tour_ops.add_tour(session, new, rt.clock())
    print(f"tour {tour.id} added: {tour.title_ja}")
    return 0


async def tours_list(rt: Runtime, args: argparse.Namespace) -> int:
    async with rt.sessions() as session:
        views = await tour_ops.list_tours(session)
    if not views:
        print("no tours yet: add one with `python -m bot tours add --help`")
    for v in views:
        dates = tour_dates(v, rt.settings.bot.tz, "ja")
        print(
            f"{v.id:>4}  {v.status:<9} {v.kind:<14} {dates}  "
            f"{v.capacity - v.seats_left}/{v.capacity}  {v.title_in('ja')}"
        )
    return 0


async def tours_close(rt: Runtime, args: argparse.Namespace) -> int:
    async with rt.sessions() as session, session.begin():
        view = await tour_ops.close_tour(session, args.tour)
    print(f"tour {view.id} closed to new sign-ups")
    return 0


async def tours_cancel(rt: Runtime, args: argparse.Namespace) -> int:
    async with rt.sessions() as session, session.begin():
        told = await tour_ops.cancel_tour(session, rt.policy, args.tour, rt.clock())
    print(f"tour {args.tour} cancelled; {told} participant(s) will be told by the worker")
    return 0


async def signups_list(rt: Runtime, args: argparse.Namespace) -> int:
    async with rt.sessions() as session:
        rows = await tour_ops.signups_for_tour(session, args.tour)
    for s in rows:
        name = s.details.get("name") or s.details.get("company") or "-"
        print(f"{s.id:>5}  {s.status:<10} {s.seats} seat(s)  {s.created_at:%Y-%m-%d %H:%M}  {name}")
    print(f"{len(rows)} sign-up(s)")
    return 0


async def signups_export(rt: Runtime, args: argparse.Namespace) -> int:
    async with rt.sessions() as session:
        rows = await tour_ops.signups_for_tour(session, args.tour)
    if args.format == "csv":
        data = tour_ops.signups_csv(rows).encode("utf-8")
    else:
        records = [
            {"id": s.id, "status": s.status, "seats": s.seats, **dict(s.details)} for s in rows
        ]
        data = (json.dumps(records, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    if args.output:
        await asyncio.to_thread(Path(args.output).write_bytes, data)
        print(f"{len(rows)} sign-up(s) written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(data)
    return 0


async def run_worker(rt: Runtime, args: argparse.Namespace) -> int:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.leader import Leadership

    worker = rt.worker()

    def start() -> Callable[[], None]:
        scheduler = AsyncIOScheduler(timezone=rt.settings.bot.timezone)
        worker.schedule(scheduler, every_seconds=args.every)
        scheduler.start()
        return lambda: scheduler.shutdown(wait=False)

    print(f"worker running: reminders and deliveries every {args.every:g}s", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Several workers may run: one leads the scheduler, the others only send the outbox.
    await Leadership(rt.db).serve(stop, start, follow=worker.courier.send_due)
    return 0


def _runner(action: Action, *, with_pushers: bool = False) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings(args.config)

        async def go() -> int:
            rt = await build_runtime(settings, clock=utc_now)
            closers: list[Callable[[], Awaitable[Any]]] = []
            try:
                if with_pushers:
                    from bot.pushers import register_pushers

                    closers = await register_pushers(rt)
                return await action(rt, args)
            except tour_ops.TourError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            finally:
                for close in closers:
                    await close()
                await rt.aclose()

        return asyncio.run(go())

    return run


def register(sub: Any) -> None:
    tours = sub.add_parser("tours", help="manage tours (experience, site visit, online meeting)")
    tsub = tours.add_subparsers(dest="tours_command", required=True)
    add = tsub.add_parser("add", help="add a tour; dates are in the city's time zone")
    add.add_argument(
        "--kind", required=True, choices=["experience", "site_visit", "online_meeting"]
    )
    add.add_argument("--title-ja", required=True)
    add.add_argument("--title-en")
    add.add_argument("--start", required=True, help="e.g. '2026-12-20 13:00'")
    add.add_argument("--end", required=True)
    add.add_argument("--capacity", required=True, type=int, help="seats (people)")
    add.add_argument("--deadline", help="last moment to sign up (default: the start)")
    add.add_argument("--place", help="meeting place, or the online meeting link")
    add.add_argument("--description-ja")
    add.add_argument("--description-en")
    add.set_defaults(func=_runner(tours_add))
    tsub.add_parser("list", help="list tours with seats taken").set_defaults(
        func=_runner(tours_list)
    )
    for name, action, text in (
        ("close", tours_close, "stop new sign-ups for a tour"),
        ("cancel", tours_cancel, "cancel a tour and tell everyone signed up"),
    ):
        p = tsub.add_parser(name, help=text)
        p.add_argument("tour", type=int)
        p.set_defaults(func=_runner(action))

    signups = sub.add_parser("signups", help="see and export sign-ups")
    ssub = signups.add_subparsers(dest="signups_command", required=True)
    ls = ssub.add_parser("list", help="sign-ups of one tour")
    ls.add_argument("--tour", required=True, type=int)
    ls.set_defaults(func=_runner(signups_list))
    ex = ssub.add_parser("export", help="every field of every sign-up of one tour")
    ex.add_argument("--tour", required=True, type=int)
    ex.add_argument("--format", choices=["csv", "json"], default="csv")
    ex.add_argument("--output", help="file to write (default: standard output)")
    ex.set_defaults(func=_runner(signups_export))

    worker = sub.add_parser("worker", help="send reminders and queued messages (Procfile worker)")
    worker.add_argument("--every", type=float, default=15.0, help="seconds between runs")
    worker.set_defaults(func=_runner(run_worker, with_pushers=True))
