"""The dashboard's figures and the FAQ page (entries, file problems, unanswered questions)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from bot.config import Settings
from bot.storage.models import UnansweredQuestion
from bot.web import create_app
from tests.admin import data
from tests.admin.conftest import ADMIN, HTTPS, Console, app_kwargs
from tests.conftest import Clock


def _figure(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}">(?:<a [^>]*>)?(\d+)', page)
    assert found, element_id
    return found.group(1)


def test_dashboard_counts(staff: Console) -> None:
    now = staff.runtime.clock()  # 2026-11-24 10:00 in Tokyo

    async def make(session):  # type: ignore[no-untyped-def]
        line = [data.person(session, created_at=now) for _ in range(3)]
        data.person(session, channel="line", reachable=False, created_at=now)
        tg = data.person(session, channel="telegram", created_at=now)
        tour = data.tour(session, now, capacity=5)
        await session.flush()
        data.signup(session, tour, line[0], now, seats=2)
        data.signup(session, tour, line[1], now, status="waitlisted")
        data.message(session, line[0], "today", now)
        data.message(session, line[0], "also today", now - timedelta(hours=9))  # 01:00 local
        data.message(session, line[0], "yesterday", now - timedelta(hours=11))
        data.handoff(session, tg, now)
        data.handoff(session, line[2], now, status="active")
        for days in (1, 6, 8):
            session.add(
                UnansweredQuestion(
                    text="犬は飼える？", language="ja", band="unknown",
                    created_at=now - timedelta(days=days),
                )
            )  # fmt: skip

    staff.db(make)
    page = staff.client.get("/admin/").text
    assert _figure(page, "messages-today") == "2"
    assert _figure(page, "unanswered-week") == "2"
    assert _figure(page, "waiting") == "1"
    followers = page.split('id="followers"')[1].split("</table>")[0]
    assert re.search(r"LINE</td><td class=\"num\">3<", followers)
    assert re.search(r"Telegram</td><td class=\"num\">1<", followers)
    tours = page.split('id="open-tours"')[1].split("</table>")[0]
    assert "2 / 5" in tours and '<td class="num">1</td>' in tours


def test_faq_page_lists_entries_per_topic_and_unanswered_groups(staff: Console) -> None:
    now = staff.runtime.clock()

    async def make(session):  # type: ignore[no-untyped-def]
        for text in ("犬は飼える？", "犬は飼える?", "雪かきは誰がする？"):
            session.add(
                UnansweredQuestion(text=text, language="ja", band="unknown", created_at=now)
            )

    staff.db(make)
    page = staff.client.get("/admin/faq").text
    assert 'id="faq-ok"' in page and 'id="topic-housing"' in page
    rows = page.split('id="unanswered"')[1].split("</table>")[0]
    assert re.search(r'<td class="num">2</td><td>犬は飼える？</td>', rows)
    assert "雪かきは誰がする？" in rows
    assert "過去7日" in staff.client.get("/admin/faq?days=7").text


def test_faq_page_shows_problems_in_the_files(
    settings: Settings, clock: Clock, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    broken = tmp_path / "faq"
    broken.mkdir()
    (broken / "housing.toml").write_text('[[entry]]\nid = "x"\ntopic = "nowhere"\n', "utf-8")
    # The bot itself keeps the sample FAQ; only the page reads the broken directory.
    app = create_app(settings, clock=clock, migrate_schema=True, **app_kwargs(request))
    with TestClient(app, base_url=HTTPS, follow_redirects=False) as client:
        console = Console(client)
        console.add_staff(ADMIN, "admin")
        console.login(ADMIN)
        runtime = console.runtime
        faq = runtime.settings.faq.model_copy(update={"directory": broken})
        runtime.settings = runtime.settings.model_copy(update={"faq": faq})
        page = client.get("/admin/faq")
        assert page.status_code == 200
        problems = page.text.split('id="faq-problems"')[1]
        assert "housing.toml" in problems and "nowhere" in problems
