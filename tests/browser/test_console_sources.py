"""Sources and the qualification answers in the console, in a real browser over ``crmbot serve``: LINE users
come from 「診断 ads」 (signed webhooks), the overview and the leads page are filtered by typing the source,
and a lead's page shows its source and its answers to the questions after the result."""

from __future__ import annotations

import time
from typing import Any

import pytest

from conversations.analytics import Analytics
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, until


@pytest.fixture(scope="module")
def figures(server: Server) -> Analytics:
    """Two people from "ads" (one answers two questions after the result, skipping the second), one with no
    source."""
    http = Http(server.base)
    for start, taps in (("診断 ads", ("f:0:2", "f:1:0")), ("診断 ads", ()), ("診断", ())):
        user = LineUser(http, server.fake_line, time.time)
        user.follow()
        user.say(start)
        for q in range(10):
            user.tap(f"a:1:{q}:A")
        for data in taps:
            user.tap(data)
    analytics = Analytics(server.redis)

    def applied() -> bool:  # the worker counts each step before it delivers the reply
        waiting = list(server.redis.scan_iter(match="crmbot:{u:line:*}:out"))
        return analytics.funnel()["finished"] == 3 and not waiting and any(x.qual for x in analytics.leads())

    eventually(applied, "the worker to deliver and count every step")
    return analytics


def rows(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row"))


def test_filter_by_source_and_the_lead_page(console: Any, server: Server, figures: Analytics) -> None:
    from selenium.webdriver.common.by import By

    console.set_window_size(1280, 1000)
    try:
        console.get(server.url("/console/"))
        assert console.find_element(By.ID, "fig-started").text == "3"
        box = console.find_element(By.ID, "filter-source")
        box.send_keys("ads")
        console.find_element(By.ID, "filter-apply").click()
        until(console, lambda b: "source=ads" in b.current_url, "the overview of source ads")
        assert console.find_element(By.ID, "fig-started").text == "2"

        console.get(server.url("/console/leads"))
        assert len(rows(console)) == 3
        console.find_element(By.ID, "filter-source").send_keys("ads")
        console.find_element(By.ID, "filter-apply").click()
        until(console, lambda b: "source=ads" in b.current_url, "the leads of source ads")
        assert len(rows(console)) == 2
        links = [a.get_attribute("href") for a in console.find_elements(By.CSS_SELECTOR, "#leads-table a")
                 if "/console/leads/" in (a.get_attribute("href") or "")]
        assert len(links) == 2  # the two leads from ads, each by its opaque id
        for link in links:  # the one that answered the questions after its result
            console.get(link)
            if "食品・飲料" in console.find_element(By.ID, "lead-qualify").text:
                break
        assert console.find_element(By.ID, "lead-source").text == "ads"
        shop = console.find_element(By.ID, "lead-qualify")
        assert shop.is_displayed()
        pairs = [(d.find_element(By.TAG_NAME, "dt").text, d.find_element(By.TAG_NAME, "dd").text)
                 for d in shop.find_elements(By.CSS_SELECTOR, "dl.facts > div")]
        assert pairs == [("商材", "食品・飲料"), ("月商", "（答えない）"), ("カート", "–")]
    finally:
        console.set_window_size(420, 860)
