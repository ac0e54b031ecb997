"""/healthz (process up), /readyz (database and schema), /metrics (Prometheus text)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from bot import metrics
from bot.config import Settings
from bot.delivery import Courier, Unreachable
from bot.messages import Reply
from bot.runtime import Runtime
from bot.storage.bookings import enqueue
from bot.storage.db import create_engine
from bot.web import app_from_env, create_app, readiness
from faq.library import FaqLibrary
from tests.conftest import ROOT, Clock


@pytest.fixture
def client(settings: Settings, faq_library: FaqLibrary) -> Iterator[TestClient]:
    app = create_app(settings, migrate_schema=True, library=faq_library)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_healthz_says_the_process_is_up(client: TestClient) -> None:
    res = client.get("/healthz")
    assert res.status_code == 200 and res.json() == {"status": "ok"}


def test_readyz_checks_database_and_schema(client: TestClient) -> None:
    res = client.get("/readyz")
    assert res.status_code == 200
    assert res.json() == {"status": "ok", "database": "ok", "migrations": "ok"}


def test_readyz_is_503_when_the_schema_is_behind(
    settings: Settings, faq_library: FaqLibrary
) -> None:
    app = create_app(settings, migrate_schema=False, library=faq_library)
    with TestClient(app) as c:
        res = c.get("/readyz")
        assert res.status_code == 503
        assert res.json() == {"status": "unavailable", "database": "ok", "migrations": "behind"}
        assert c.get("/healthz").status_code == 200  # alive, just not ready


async def test_readiness_names_an_unreachable_database(tmp_path: Path) -> None:
    db = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/none", root=tmp_path)
    try:
        report = await readiness(SimpleNamespace(db=db))  # type: ignore[arg-type]
    finally:
        await db.dispose()
    assert report == {"database": "unreachable", "migrations": "unknown"}


def test_metrics_count_responses_questions_latency_and_outbox(client: TestClient) -> None:
    answered = value("iju_faq_questions_total", outcome="answered")
    unknown = value("iju_faq_questions_total", outcome="not_answered")
    handled = value("iju_event_handle_seconds_count", channel="web")
    ok = value("iju_http_responses_total", route="webchat", status="200")
    client.get("/")
    client.post("/api/chat", json={"text": "空き家バンクとは何ですか？"})
    client.post("/api/chat", json={"text": "zzqx vorpal snark"})
    client.post("/webhooks/line", content=b"{}")  # LINE is not configured in tests: 404
    runtime: Runtime = client.app.state.runtime  # type: ignore[attr-defined]

    async def queue() -> None:
        async with runtime.sessions() as session, session.begin():
            for n, channel in enumerate(["line", "line", "telegram"]):
                enqueue(
                    session, key=f"test:{n}", channel=channel, address=f"u{n}",
                    replies=[Reply("お知らせ")], now=runtime.clock(),
                )  # fmt: skip

    client.portal.call(queue)  # type: ignore[attr-defined]
    res = client.get("/metrics")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/plain")
    text = res.text
    assert sample(text, "iju_faq_questions_total", outcome="answered") == answered + 1
    assert sample(text, "iju_faq_questions_total", outcome="not_answered") == unknown + 1
    assert sample(text, "iju_event_handle_seconds_count", channel="web") == handled + 2
    assert sample(text, "iju_http_responses_total", route="webchat", status="200") == ok + 3
    assert (sample(text, "iju_http_responses_total", route="webhook_line", status="404") or 0) >= 1
    assert sample(text, "iju_outbox_pending", channel="line") == 2
    assert sample(text, "iju_outbox_pending", channel="telegram") == 1
    assert sample(text, "iju_outbox_pending", channel="web") is None  # nothing queued


class Pusher:
    def __init__(self, unreachable: Sequence[str] = ()) -> None:
        self.unreachable = set(unreachable)
        self.sent: list[str] = []

    async def push(self, address: str, replies: Sequence[Reply], *, retry_key: str) -> None:
        if address in self.unreachable:
            raise Unreachable(address)
        self.sent.append(address)


async def test_courier_counts_deliveries_by_result(runtime: Runtime, clock: Clock) -> None:
    sent = value("iju_deliveries_total", channel="line", result="sent")
    skipped = value("iju_deliveries_total", channel="line", result="skipped")
    async with runtime.sessions() as session, session.begin():
        for address in ("a", "b", "gone"):
            enqueue(
                session, key=f"k:{address}", channel="line", address=address,
                replies=[Reply("hi")], now=clock(),
            )  # fmt: skip
    pusher = Pusher(unreachable=["gone"])
    await Courier(runtime.sessions, {"line": pusher}, clock).send_due()
    assert sorted(pusher.sent) == ["a", "b"]
    assert value("iju_deliveries_total", channel="line", result="sent") == sent + 2
    assert value("iju_deliveries_total", channel="line", result="skipped") == skipped + 1


def test_route_groups_are_bounded() -> None:
    assert metrics.route_group("/webhooks/line") == "webhook_line"
    assert metrics.route_group("/admin/people/3") == "admin"
    assert metrics.route_group("/readyz") == "health"
    assert metrics.route_group("/wp-login.php") == "other"


def test_multiprocess_mode_sums_every_process(tmp_path: Path) -> None:
    """Two processes count into PROMETHEUS_MULTIPROC_DIR; one scrape sees both."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    count = "from bot import metrics; metrics.FAQ_QUESTIONS.labels('answered').inc()"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, cwd=ROOT, timeout=60)
    text = metrics.exposition({"line": 5}, environ=env).decode()
    assert sample(text, "iju_faq_questions_total", outcome="answered") == 2
    assert sample(text, "iju_outbox_pending", channel="line") == 5


def test_app_from_env_names_the_bad_key(capsys: pytest.CaptureFixture[str]) -> None:
    env = {"IJU_CONFIG": str(ROOT / "config.toml"), "DATABASE_URL": "mysql://db/iju"}
    with pytest.raises(SystemExit) as exit_:
        app_from_env(env)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "database.url (from the environment variable DATABASE_URL)" in err


def test_app_from_env_refuses_an_unknown_log_format(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        app_from_env({"IJU_CONFIG": str(ROOT / "config.toml"), "LOG_FORMAT": "xml"})
    assert "LOG_FORMAT" in capsys.readouterr().err
