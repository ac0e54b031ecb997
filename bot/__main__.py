"""Command line: `python -m bot serve|chat|migrate|faq ...` (run from the repository root)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import cli_platforms, cli_staff, cli_tours, logs
from bot.config import ConfigError, Settings, load_settings
from faq.kb import KnowledgeBaseError, load_kb

log = logging.getLogger("bot")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.web import create_app

    settings = _settings(args)
    host = args.host or settings.web.host
    port = args.port or settings.web.port
    print(f"iju-bot: web chat at http://{host}:{port}/  (Ctrl+C to stop)", flush=True)
    app = create_app(settings, background_worker=args.with_worker, seed_samples=args.seed_samples)
    # log_config=None: uvicorn keeps the handlers main() set up (LOG_FORMAT, redaction).
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    """Answer webhook events that web processes accepted (WEB_ANSWERS=0): claim them from
    the inbox, run the engine, send the replies. Several may run; no HTTP port."""
    import contextlib
    import signal
    import types

    from bot.engine import utc_now
    from bot.runtime import build_runtime
    from bot.web import start_platforms

    settings = _settings(args)
    # Below the web processes on a shared machine: a late answer is fine, a webhook's 200
    # past LINE's 2 seconds is not (bench/README.md, steady load).
    niceness = args.nice if args.nice is not None else int(os.environ.get("ANSWER_NICE", "10"))
    if niceness:
        os.nice(niceness)

    async def run() -> None:
        runtime = await build_runtime(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runtime.aclose)
            state = types.SimpleNamespace()
            await start_platforms(state, stack, runtime, utc_now, answer=True)
            if state.line is None and state.telegram is None:
                log.warning("answer: neither LINE nor Telegram is configured, nothing to do")
            watch = asyncio.create_task(runtime.engine.services.library.watch())
            stack.callback(watch.cancel)
            print("answering webhook events from the inbox", flush=True)
            await stop.wait()

    asyncio.run(run())
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.channels.console import chat, default_user
    from bot.runtime import build_runtime

    settings = _settings(args)

    async def run() -> None:
        runtime = await build_runtime(settings)
        try:
            await chat(runtime.engine, args.user or default_user(), sys.stdin, sys.stdout)
        finally:
            await runtime.aclose()

    asyncio.run(run())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.storage import migrate
    from bot.storage.db import create_engine

    settings = _settings(args)

    async def run() -> None:
        db = create_engine(settings.database.url, root=settings.root)
        try:
            await migrate.upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    print("database schema is up to date")
    return 0


def _kb_dir(args: argparse.Namespace) -> Path:
    if args.kb:
        return Path(args.kb)
    return _settings(args).faq_dir


def cmd_faq_check(args: argparse.Namespace) -> int:
    directory = _kb_dir(args)
    kb = load_kb(directory)
    topics: dict[str, int] = {}
    for entry in kb:
        topics[entry.topic] = topics.get(entry.topic, 0) + 1
    summary = ", ".join(f"{t} {n}" for t, n in sorted(topics.items()))
    print(f"{directory}: {len(kb)} entries OK ({summary})")
    return 0


def cmd_faq_match(args: argparse.Namespace) -> int:
    """One question per stdin line -> one JSON object per stdout line, flushed each time.
    The matcher is built as the bot builds it, so its decision is calibrated on DIR itself."""
    from bot.runtime import matcher_builder

    directory = _kb_dir(args)
    matcher = matcher_builder(_settings(args))(load_kb(directory))
    out = sys.stdout
    for raw in sys.stdin:
        query = raw.rstrip("\r\n")
        result = matcher.match(query, top=args.top)
        record = {
            "query": query,
            "matches": [{"id": m.entry.id, "score": round(m.score, 4)} for m in result.matches],
            "answered": result.answered,
            # answer: matches[0] outright; suggest: matches[:3] offered to tap; unknown: declined
            "band": result.band.value,
        }
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 0


def cmd_faq_unanswered(args: argparse.Namespace) -> int:
    """Questions the bot did not answer outright, grouped, most asked first: what to write."""
    from bot.storage.db import create_engine, session_factory
    from bot.storage.unanswered import grouped

    settings = _settings(args)

    async def run() -> list[tuple[str, int, str | None]]:
        db = create_engine(settings.database.url, root=settings.root)
        try:
            async with session_factory(db)() as session:
                return await grouped(session, days=args.days, limit=args.limit)
        finally:
            await db.dispose()

    rows = asyncio.run(run())
    if args.json:
        for text, count, best in rows:
            record = {"question": text, "count": count, "closest": best}
            print(json.dumps(record, ensure_ascii=False))
        return 0
    if not rows:
        print(f"no unanswered questions in the last {args.days} days")
    for text, count, best in rows:
        print(f"{count:>4}  {text[:80]}" + (f"  (closest: {best})" if best else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("IJU_CONFIG", "config.toml"),
        help="path of config.toml (default: ./config.toml or $IJU_CONFIG)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the web server (web chat, webhooks, console)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument(
        "--with-worker",
        action="store_true",
        help="also send reminders and queued messages from this process (single machine)",
    )
    serve.add_argument(
        "--seed-samples", action="store_true", help="add sample tours to an empty database"
    )
    serve.set_defaults(func=cmd_serve)

    answer = sub.add_parser(
        "answer", help="answer accepted webhook events (Procfile answer, with WEB_ANSWERS=0)"
    )
    answer.add_argument(
        "--nice", type=int, help="CPU priority below the web processes (default $ANSWER_NICE or 10)"
    )
    answer.set_defaults(func=cmd_answer)

    chat = sub.add_parser("chat", help="chat with the bot in this terminal")
    chat.add_argument("--user", help="who you are in the conversation (default: local-terminal)")
    chat.set_defaults(func=cmd_chat)

    sub.add_parser("migrate", help="bring the database schema up to date").set_defaults(
        func=cmd_migrate
    )

    cli_tours.register(sub)
    cli_platforms.register(sub)
    cli_staff.register(sub)

    faq = sub.add_parser("faq", help="check and try the FAQ knowledge base")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True)
    check = faq_sub.add_parser("check", help="validate the FAQ files")
    check.add_argument("--kb", help="FAQ directory (default: from config.toml)")
    check.set_defaults(func=cmd_faq_check)
    match = faq_sub.add_parser("match", help="match questions from stdin, JSON lines out")
    match.add_argument("--kb", help="FAQ directory (default: from config.toml)")
    match.add_argument("--top", type=int, default=5)
    match.set_defaults(func=cmd_faq_match)
    unanswered = faq_sub.add_parser(
        "unanswered", help="questions the bot could not answer outright, most asked first"
    )
    unanswered.add_argument("--days", type=int, default=30)
    unanswered.add_argument("--limit", type=int, default=100)
    unanswered.add_argument("--json", action="store_true", help="one JSON object per line")
    unanswered.set_defaults(func=cmd_faq_unanswered)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        fmt = logs.log_format_from(os.environ.get("LOG_FORMAT"))
    except ValueError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(
        # A terminal chat or a JSON pipe should not be drowned in INFO lines.
        os.environ.get(
            "LOG_LEVEL",
            "INFO" if args.command in ("serve", "migrate", "worker", "answer") else "WARNING",
        ),
        fmt,
    )
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except KnowledgeBaseError as exc:
        print("FAQ files have problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
