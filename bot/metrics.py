"""Prometheus metrics: what the web processes and workers count, and the /metrics exposition.

The metrics live in prometheus_client's process-wide registry on purpose: that is the only
shape its multiprocess mode supports (each process writes its values to files under
PROMETHEUS_MULTIPROC_DIR and any web process can sum them on a scrape). The Procfile gives
`web`, `answer` and `worker` one such directory, so the events `answer` handles and the
deliveries `worker` sends show at web's /metrics: one scrape target, no port per process
(README, "Operating it"). They hold counts, never state another process needs. No web
framework here: bot/engine.py imports this module.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from bot.messages import Incoming
from faq.matcher import MatchResult


def _multiprocess_directory(environ: Mapping[str, str]) -> None:
    """Creates PROMETHEUS_MULTIPROC_DIR if it is set and missing: each process opens its
    files there as soon as a metric has a value (below, at import), and the first process to
    start should not fail for want of the directory."""
    directory = environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)


_multiprocess_directory(os.environ)

HTTP_RESPONSES = Counter(
    "iju_http_responses_total",
    "HTTP responses by route group (webhook_line, webhook_telegram, webchat...) and status.",
    ["route", "status"],
)
EVENT_SECONDS = Histogram(
    "iju_event_handle_seconds",
    "Time the engine took to handle one event (load state, match, run intent, save).",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FAQ_QUESTIONS = Counter(
    "iju_faq_questions_total",
    "Questions by outcome: answered outright, suggested (did you mean), not_answered.",
    ["outcome"],
)
# Every outcome shows from the first scrape (as 0), so a dashboard's ratio has no gaps.
for _outcome in ("answered", "suggested", "not_answered"):
    FAQ_QUESTIONS.labels(_outcome)
DELIVERIES = Counter(
    "iju_deliveries_total",
    "Outbox deliveries by channel and result (sent, skipped, retried, failed).",
    ["channel", "result"],
)

# The FAQ intent's name (intents/faq_answer.py); kept as a string so metrics stay a leaf.
FAQ_INTENT = "faq"

S = TypeVar("S")
R = TypeVar("R")
P = ParamSpec("P")


def timed_handle(
    handle: Callable[Concatenate[S, Incoming, P], Awaitable[R]],
) -> Callable[Concatenate[S, Incoming, P], Awaitable[R]]:
    """Decorates Engine.handle: observes its duration per channel, whatever the outcome."""

    @functools.wraps(handle)
    async def timed(self: S, incoming: Incoming, /, *args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            return await handle(self, incoming, *args, **kwargs)
        finally:
            EVENT_SECONDS.labels(incoming.channel).observe(time.perf_counter() - started)

    return timed


def count_faq(intent: str, unanswered: MatchResult | None) -> None:
    """Called by the engine once an intent has answered a turn."""
    if unanswered is not None:
        band = getattr(unanswered.band, "value", unanswered.band)
        FAQ_QUESTIONS.labels("suggested" if band == "suggest" else "not_answered").inc()
    elif intent == FAQ_INTENT:
        FAQ_QUESTIONS.labels("answered").inc()


class _Row(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def channel(self) -> str: ...


def count_deliveries(
    rows: Sequence[_Row], sent: Iterable[int], skipped: Iterable[int], failed: Iterable[int]
) -> None:
    """One Courier batch: every claimed row not sent, skipped or failed went back to retry."""
    outcome = {i: "sent" for i in sent} | {i: "skipped" for i in skipped}
    outcome |= {i: "failed" for i in failed}
    for row in rows:
        DELIVERIES.labels(row.channel, outcome.get(row.id, "retried")).inc()


class _Snapshot(Collector):
    """Families computed at scrape time (from the database), exposed once then dropped."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def outbox_depth(pending: Mapping[str, int]) -> Metric:
    gauge = GaugeMetricFamily(
        "iju_outbox_pending",
        "Deliveries waiting in the outbox (status pending), by channel, read at scrape time.",
        labels=["channel"],
    )
    for channel, count in sorted(pending.items()):
        gauge.add_metric([channel], count)
    return gauge


@dataclass(frozen=True)
class InboxDepth:
    """Webhook events accepted but not answered yet: counts by (channel, status), and the
    age in seconds of each channel's oldest one."""

    counts: Mapping[tuple[str, str], int]
    oldest_seconds: Mapping[str, float]


def inbox_depth(depth: InboxDepth) -> list[Metric]:
    pending = GaugeMetricFamily(
        "iju_inbox_pending",
        "Webhook events accepted and not yet answered (accepted: to process; processed: "
        "replies to send), by channel, read at scrape time.",
        labels=["channel", "status"],
    )
    for (channel, status), count in sorted(depth.counts.items()):
        pending.add_metric([channel, status], count)
    oldest = GaugeMetricFamily(
        "iju_inbox_oldest_seconds",
        "Age of the oldest unanswered webhook event, by channel (0 when none waits).",
        labels=["channel"],
    )
    for channel, age in sorted(depth.oldest_seconds.items()):
        oldest.add_metric([channel], age)
    return [pending, oldest]


def exposition(
    pending: Mapping[str, int],
    environ: Mapping[str, str] | None = None,
    *,
    inbox: InboxDepth | None = None,
) -> bytes:
    """The text for /metrics: this process's metrics (or every process's, in multiprocess
    mode) plus the outbox depth just read from the database."""
    env = os.environ if environ is None else environ
    directory = env.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    scrape = CollectorRegistry(auto_describe=False)
    families = [outbox_depth(pending), *(inbox_depth(inbox) if inbox is not None else [])]
    scrape.register(_Snapshot(families))
    return generate_latest(registry) + generate_latest(scrape)


CONTENT_TYPE = CONTENT_TYPE_LATEST

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Route groups, not raw paths: a label per path would let any caller grow the metric.
_GROUPS = (
    ("/webhooks/line", "webhook_line"),
    ("/webhooks/telegram", "webhook_telegram"),
    ("/api/chat", "webchat"),
    ("/admin", "admin"),
    ("/healthz", "health"),
    ("/readyz", "health"),
    ("/metrics", "metrics"),
)


def route_group(path: str) -> str:
    if path == "/":
        return "webchat"
    for prefix, group in _GROUPS:
        if path == prefix or path.startswith(prefix + "/"):
            return group
    return "other"


class ResponseCounter:
    """Pure ASGI middleware: counts every HTTP response by route group and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # an exception before any response reaches the caller as a 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            HTTP_RESPONSES.labels(route_group(scope.get("path", "")), str(status)).inc()
