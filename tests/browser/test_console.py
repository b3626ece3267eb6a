"""The console in a real browser, on figures made by LINE users through signed webhooks to the real
server: the login (a wrong password shows the error, the right one lands on the overview), the
overview with its charts, the leads filter, the try-it page from the nav, and a try-it diagnosis
that shows in no figure."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest

from conversations.analytics import Analytics
from tests.bot.line.helpers import LineUser
from tests.browser.chat import open_try, take_diagnosis
from tests.browser.conftest import Http, Server, eventually, log_in, screenshot, until

# Four LINE users: three finish (one per tier), one stops after answering three questions.
PEOPLE = {"A": "AAAAAAAAAA", "B": "AAAAAAABBC", "C": "DDDDDDDDDD", "stopped": "ABC"}


@pytest.fixture(scope="module")
def figures(server: Server) -> Analytics:
    http = Http(server.base)
    for answers in PEOPLE.values():
        user = LineUser(http, server.fake_line, time.time)
        user.follow()
        user.tap("s")
        for q, letter in enumerate(answers):
            user.tap(f"a:1:{q}:{letter}")
    analytics = Analytics(server.redis)

    def applied() -> bool:  # the worker counts each step before it delivers the reply
        f = analytics.funnel()
        waiting = list(server.redis.scan_iter(match="crmbot:{u:line:*}:out"))
        return f["started"] == 4 and f["finished"] == 3 and not waiting

    eventually(applied, "the worker to deliver and count every step")
    return analytics


def figure(browser: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.ID, f"fig-{name}").text)


def funnel_row(browser: Any, q: int) -> list[str]:
    from selenium.webdriver.common.by import By

    row = browser.find_element(By.CSS_SELECTOR, f"#table-funnel tr[data-q='{q}']")
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def lead_rows(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row"))


def test_login_wrong_then_right_password(page: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    page.get(server.url("/console/"))
    until(page, lambda b: "/console/login" in b.current_url, "the redirect to the login page")
    log_in(page, server, password="not-the-password")
    error = until(page, lambda b: b.find_elements(By.ID, "login-error"), "the login error")[0]
    assert error.text == "パスワードが違います。"
    assert "/console/login" in page.current_url
    assert page.find_elements(By.ID, "nav") == []  # not in
    log_in(page, server)
    until(page, lambda b: b.current_url == server.url("/console/"), "the overview")
    assert page.find_elements(By.ID, "login-error") == []
    assert page.find_element(By.ID, "nav-overview").get_attribute("class") == "active"


def test_overview_with_its_charts(console: Any, server: Server, figures: Analytics, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    console.set_window_size(1280, 1500)
    try:
        console.get(server.url("/console/"))
        assert figure(console, "followers") == "4"
        assert [figure(console, x) for x in ("started", "finished", "in-progress")] == ["4", "3", "1"]
        assert [figure(console, f"tier-{x}") for x in "ABC"] == ["1", "1", "1"]
        assert funnel_row(console, 1)[1:3] == ["4", "4"]
        assert funnel_row(console, 4)[1:3] == ["4", "3"]  # the one who stopped was shown Q4
        assert funnel_row(console, 5)[1:3] == ["3", "3"]
        for chart in ("chart-tiers", "chart-funnel", "chart-answers"):
            img = console.find_element(By.ID, chart)
            until(console, lambda b, img=img: b.execute_script(
                "return arguments[0].complete && arguments[0].naturalWidth > 0 && arguments[0].naturalHeight > 0",
                img), f"{chart} drawn")
            kind, _, data = img.get_attribute("src").partition(";base64,")  # drawn in the page: no request
            assert kind == "data:image/svg+xml", (chart, kind)
            body = base64.b64decode(data).decode()
            assert "<svg" in body and len(body) > 2000, chart
            assert "なし" not in body, f"{chart} drawn empty"  # the console's "no data" chart says なし
        screenshot(console, "console-overview.png", tmp_path)
    finally:
        console.set_window_size(420, 860)


def test_leads_filter_by_tier(console: Any, server: Server, figures: Analytics) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    console.set_window_size(1280, 1000)
    try:
        console.get(server.url("/console/leads"))
        assert sorted(r.get_attribute("data-tier") for r in lead_rows(console)) == ["", "A", "B", "C"]
        for tier in "AC":
            Select(console.find_element(By.ID, "filter-tier")).select_by_value(tier)
            console.find_element(By.ID, "filter-apply").click()
            until(console, lambda b, tier=tier: f"tier={tier}" in b.current_url, f"the leads of tier {tier}")
            rows = lead_rows(console)
            assert [r.get_attribute("data-tier") for r in rows] == [tier]
            assert PEOPLE[tier] in rows[0].text  # its ten answers
        Select(console.find_element(By.ID, "filter-tier")).select_by_value("")
        console.find_element(By.ID, "filter-apply").click()
        until(console, lambda b: len(lead_rows(b)) == 4, "every lead again")
    finally:
        console.set_window_size(420, 860)


def test_the_nav_leads_to_the_try_page(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    console.find_element(By.ID, "nav-try").click()
    until(console, lambda b: b.current_url == server.url("/console/try/"), "the try page")
    until(console, lambda b: any("友だち追加" in e.text for e in b.find_elements(By.CSS_SELECTOR, "#log .msg-bot")),
          "the greeting")
    console.find_element(By.CSS_SELECTOR, ".try-console").click()
    until(console, lambda b: b.current_url == server.url("/console/"), "back on the overview")


def test_a_try_it_diagnosis_shows_in_no_figure(console: Any, server: Server, figures: Analytics) -> None:
    from selenium.webdriver.common.by import By

    before = figures.funnel()
    open_try(console, server)
    card = take_diagnosis(console, "AAAAAAAAAA")
    assert "A評価" in card.text
    # The worker applied the try-it user's steps: a lead of channel "web", marked as a test ...
    tests = eventually(lambda: [x for x in figures.leads(channel="web") if x.finished], "the try-it lead")
    assert len(tests) == 1 and tests[0].test and tests[0].tier == "A" and tests[0].answers == "AAAAAAAAAA"
    # ... and in no figure: the funnel, the overview, the leads, the API are as before.
    assert figures.funnel() == before
    console.get(server.url("/console/"))
    assert [figure(console, x) for x in ("followers", "started", "finished", "tier-A")] == ["4", "4", "3", "1"]
    console.get(server.url("/console/leads"))
    rows = lead_rows(console)
    assert len(rows) == 4 and all(r.get_attribute("data-lead") and ":" not in r.get_attribute("data-lead")
                                  for r in rows)  # opaque ids (bot/console/refs.py)
    console.get(server.url("/console/api/funnel"))
    api = json.loads(console.find_element(By.TAG_NAME, "body").text)
    assert api["started"] == 4 and api["finished"] == 3 and api["tiers"] == {"A": 1, "B": 1, "C": 1}
