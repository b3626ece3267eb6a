"""The nurture page in a real browser: LINE's statistics per unit read by the worker's daily chore (bot/insight.py)
from the fake LINE API, then shown by follow-up step and by nudge, with a withheld count as "—" (and its rate),
a unit LINE has no figures for yet saying so, and the period chosen with the date fields."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import redis.asyncio as aioredis

from bot.console.texts import JA
from bot.insight import InsightChore, jst_day, next_run, record_sent, ymd
from bot.line.insight import LineInsight
from bot.line.transport import LineApi
from tests.bot.line.helpers import TOKEN
from tests.browser.conftest import Server, until


def read_line_figures(server: Server, now: float, sends: dict[str, int], sent_after: dict[str, int]) -> None:
    """The pushes LINE accepted (as the transport records them), the day's pass at the next 06:00, then more
    pushes (LINE's figures for them not in yet)."""
    kwargs = server.redis.connection_pool.connection_kwargs
    url = f"redis://{kwargs['host']}:{kwargs['port']}/{kwargs.get('db', 0)}"

    async def go() -> None:
        client = aioredis.Redis.from_url(url)
        api = LineApi(server.fake_line.base_url, TOKEN)
        try:
            for unit, n in sends.items():
                for i in range(n):
                    await record_sent(client, unit, f"browser-{unit}-{i}", now)
            await InsightChore(LineInsight(api), clock=lambda: now)(client)  # the first look: due at 06:00
            assert await InsightChore(LineInsight(api), clock=lambda: next_run(now) + 1)(client) > 0
            for unit, n in sent_after.items():
                for i in range(n):
                    await record_sent(client, unit, f"browser-{unit}-{i}", now)
        finally:
            await api.close()
            await client.aclose()

    asyncio.run(go())


def test_the_nurture_page_shows_each_step_and_nudge_with_withheld_counts_as_a_dash(console: Any,
                                                                                   server: Server) -> None:
    from selenium.webdriver.common.by import By

    now = time.time()
    today = jst_day(now)
    day = ymd(jst_day(next_run(now) + 1) - timedelta(days=1))  # the newest day the pass reads
    line = server.fake_line
    line.set_unit_figures("fu_q2_1", day, 30, 6)
    line.set_unit_figures("fu_q2_2", day, 21, None)  # clicks withheld
    line.set_unit_figures("nudge_q4", day, None, None)
    read_line_figures(server, now, {"fu_q2_1": 40, "fu_q2_2": 35, "nudge_q4": 3}, {"nudge_q7": 2})
    console.get(server.url("/console/nurture"))
    until(console, lambda b: b.find_elements(By.ID, "nurture-followups"), "the follow-ups")
    assert console.find_element(By.TAG_NAME, "h1").text == JA["nurture_title"]
    assert console.find_element(By.ID, "nav-nurture").get_attribute("class") == "active"

    def table(group: str) -> dict[str, list[str]]:
        section = console.find_element(By.ID, f"nurture-{group}")
        return {r.get_attribute("data-unit"): [c.text for c in r.find_elements(By.CSS_SELECTOR, "th, td")]
                for r in section.find_elements(By.CSS_SELECTOR, "tr.nurture-row")}

    assert table("followups") == {"fu_q2_1": ["Q2・1通目", "40", "30", "6", "75.0%", "15.0%"],
                                  "fu_q2_2": ["Q2・2通目", "35", "21", "—", "60.0%", "—"]}
    assert table("nudges") == {"nudge_q4": ["Q4で止まった方へ", "3", "—", "—", "—", "—"],
                               "nudge_q7": ["Q7で止まった方へ", "2", JA["nurture_not_yet"]]}
    assert JA["nurture_withheld"] in console.find_element(By.ID, "nurture-withheld").text
    # a period before anything was sent, chosen in the date fields
    before = (today - timedelta(days=60)).isoformat()
    for field in ("filter-from", "filter-to"):
        console.execute_script(f"document.getElementById('{field}').value = '{before}';")
    console.find_element(By.ID, "filter-apply").click()
    until(console, lambda b: b.find_elements(By.ID, "nurture-none"), "the empty period")
    assert console.find_elements(By.CSS_SELECTOR, "tr.nurture-row") == []
    assert f"from={before}" in console.current_url
