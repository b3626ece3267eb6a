"""The nurture page (``/console/nurture``) and its JSON twin (``/console/api/nurture``) through Flask's test client
on a real Redis: the follow-up steps by question and step, the nudges by question, delivered / opened / clicked
and the rates over the chosen period; a withheld count and its rate "—" (null in JSON), never 0; a unit LINE has
given no figures for yet says so; a viewer reads it, a visitor not logged in is sent to the login."""

from __future__ import annotations

import asyncio
import re
from datetime import date
from html import unescape
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis

from bot.console.texts import EN, JA
from bot.insight import KEEP_DAYS, STORE_LUA, DayFigures, day_start, record_sent
from conversations import keys
from conversations.redis_ops import runner
from tests.bot.console.conftest import ADMIN_EMAIL, TOKEN, Console, console_config, make_console
from tests.conftest import FakeClock

DAY = 86400


def store(r: redis.Redis, unit: str, day: str, opened: int | None, clicked: int | None, now: float) -> None:
    runner(r).script(STORE_LUA)([keys.insight_days(unit), keys.INSIGHT_UNITS],
                                [day, DayFigures(opened, clicked).to_json(now), "20000101", KEEP_DAYS * DAY, unit, now])


def sent(redis_url: str, unit: str, n: int, when: float) -> None:
    async def go() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            for i in range(n):
                await record_sent(client, unit, f"{unit}-job-{i}", when)
        finally:
            await client.aclose()
    asyncio.run(go())


def seed(c: Console, redis_url: str) -> None:
    """December 2025 (the clock: 2026-01-01, 09:00 Japan time)."""
    dec10 = day_start(date(2025, 12, 10)) + 3600
    for unit, n in (("fu_q3_1", 10), ("fu_q1_2", 8), ("fu_q1_1", 20), ("nudge_q4", 5), ("nudge_q10", 4)):
        sent(redis_url, unit, n, dec10)
    sent(redis_url, "fu_q1_1", 1, dec10)  # the same job again (a retry LINE answered 409): counted once
    store(c.r, "fu_q1_1", "20251210", 12, 3, c.clock())
    store(c.r, "fu_q1_1", "20251211", 4, 0, c.clock())
    store(c.r, "fu_q1_2", "20251211", 5, None, c.clock())  # clicks withheld
    store(c.r, "fu_q3_1", "20251210", None, None, c.clock())
    store(c.r, "nudge_q4", "20251210", 3, 1, c.clock())
    # nudge_q10: sent, LINE's figures not in yet


def rows(html: str, group: str) -> list[list[str]]:
    section = re.search(rf'<section class="card nurture-group" id="nurture-{group}">(.*?)</section>', html, re.S)
    assert section, group
    out = []
    for tr in re.findall(r'<tr class="nurture-row"[^>]*>(.*?)</tr>', section.group(1), re.S):
        out.append([unescape(re.sub(r"<[^>]+>", "", cell)).strip()
                    for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", tr, re.S)])
    return out


def test_the_page_groups_steps_and_nudges_and_says_withheld_as_a_dash(console: Console, redis_url: str) -> None:
    c = console
    seed(c, redis_url)
    assert c.http.get("/console/nurture").status_code == 302  # not logged in: to the login
    c.add_operator(ADMIN_EMAIL, "Admin", "admin")
    c.add_operator("view@example.jp", "Viewer", "viewer")
    assert c.login_as("view@example.jp").status_code == 302
    res = c.http.get("/console/nurture?from=2025-12-01&to=2025-12-31")
    html = res.get_data(as_text=True)
    assert res.status_code == 200 and f"<h1>{JA['nurture_title']}</h1>" in html
    assert re.search(r'class="active" id="nav-nurture"', html)
    assert rows(html, "followups") == [
        ["Q1・1通目", "20", "16", "3", "80.0%", "15.0%"],
        ["Q1・2通目", "8", "5", "—", "62.5%", "—"],
        ["Q3・1通目", "10", "—", "—", "—", "—"],
    ]
    assert rows(html, "nudges") == [
        ["Q4で止まった方へ", "5", "3", "1", "60.0%", "20.0%"],
        ["Q10で止まった方へ", "4", JA["nurture_not_yet"]],
    ]
    assert "nurture-other" not in html and JA["nurture_withheld"] in html
    # one day only: the 11th
    html = c.http.get("/console/nurture?from=2025-12-11&to=2025-12-11").get_data(as_text=True)
    assert rows(html, "followups")[:2] == [["Q1・1通目", "0", "4", "0", "—", "—"],
                                           ["Q1・2通目", "0", "5", "—", "—", "—"]]
    # a period with nothing sent and no figures
    html = c.http.get("/console/nurture?from=2026-01-01&to=2026-01-01").get_data(as_text=True)
    assert 'id="nurture-none"' in html and "nurture-row" not in html
    # a malformed date
    html = c.http.get("/console/nurture?from=2025-13-01").get_data(as_text=True)
    assert 'id="filter-error"' in html and "nurture-row" not in html


def test_the_json_twin_says_withheld_as_null(console: Console, redis_url: str) -> None:
    c = console
    seed(c, redis_url)
    res = c.http.get("/console/api/nurture?from=2025-12-01&to=2025-12-31", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200
    body: dict[str, Any] = res.get_json()
    assert body["from"] == "2025-12-01" and body["to"] == "2025-12-31"
    assert body["groups"]["followups"][1] == {"unit": "fu_q1_2", "delivered": 8, "opened": 5, "clicked": None,
                                              "has_figures": True}
    assert body["groups"]["nudges"][1] == {"unit": "nudge_q10", "delivered": 4, "opened": None, "clicked": None,
                                           "has_figures": False}
    assert c.http.get("/console/api/nurture?from=x", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400
    assert c.client().get("/console/api/nurture").status_code in (401, 403)


def test_in_english(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> None:
    c = make_console(console_config(redis_url, tmp_path, locale="en"), r, clock)
    seed(c, redis_url)
    assert c.login().status_code == 302
    html = c.http.get("/console/nurture?from=2025-12-01&to=2025-12-31").get_data(as_text=True)
    assert '<html lang="en">' in html and f"<h1>{EN['nurture_title']}</h1>" in html
    assert rows(html, "followups")[0] == ["Q1, message 1", "20", "16", "3", "80.0%", "15.0%"]
    assert rows(html, "nudges")[0][0] == "Stopped at Q4"
    assert EN["nurture_not_yet"] in unescape(html)
