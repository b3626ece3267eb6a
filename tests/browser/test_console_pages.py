"""Pages an operator can act on, in a real browser against a real ``crmbot serve``: the first run's empty
overview and its demo button (loaded, looked at, removed in one click), a team page (quarters by business
year, Slack names not IDs, units), the funnel block (started = finished + in progress + stopped, the
drop-off in words), and a parked message said in words with its discard button.

The tests run in this order on one server: the first needs the data empty."""

from __future__ import annotations

import re
import time
from typing import Any

from conversations.analytics import Analytics
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, until
from tests.fakes.line_api import REPLY


def text_of(browser: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def test_the_empty_overview_shows_how_to_see_data_and_the_demo_comes_and_goes(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    empty = until(console, lambda b: b.find_elements(By.ID, "overview-empty"), "the first run's hint")[0]
    assert "crmbot demo" in empty.text and "crmbot line setup" in empty.text
    assert empty.find_element(By.CSS_SELECTOR, "#empty-try a").get_attribute("href") == server.url("/console/try/")
    console.find_element(By.ID, "demo-load").click()
    until(console, lambda b: b.find_elements(By.ID, "demo-on"), "the demo notice")
    assert console.find_elements(By.ID, "overview-empty") == []
    started = int(text_of(console, "#fig-started"))
    assert started >= 30
    parts = [int(text_of(console, f"#fig-{x}")) for x in ("finished", "in-progress", "stopped")]
    assert sum(parts) == started and parts[2] > 0  # some stopped

    # a demo team's page: its quarters by its business year (from April), names not IDs, units on targets
    console.get(server.url("/console/teams"))
    link = until(console, lambda b: b.find_elements(By.LINK_TEXT, "本店CRMチーム"), "the demo team")[0]
    link.click()
    until(console, lambda b: b.find_elements(By.ID, "team-quarters"), "the team page")
    assert text_of(console, "#team-channel") == "#crm-honten"
    periods = [e.text for e in console.find_elements(By.CSS_SELECTOR, "#team-quarters td.period")]
    assert periods and all(re.fullmatch(r"\d{4}年度 第[1-4]四半期（.+月）", p) for p in periods), periods
    people = {e.text for e in console.find_elements(By.CSS_SELECTOR, "#team-quarters td.reported-by")}
    assert people and people <= {"佐藤 花子", "田中 一郎", "佐藤 花子、田中 一郎", "田中 一郎、佐藤 花子"}
    page = console.find_element(By.TAG_NAME, "main").text
    assert "U0DEMO" not in page and "C0DEMO" not in page
    target = text_of(console, "#team-indicators tr[data-indicator='complete_records'] td.target")
    assert target.endswith("%"), target
    assert console.execute_script(
        "var i = document.getElementById('chart-team-trend'); return i.complete && i.naturalWidth > 0;")

    # removed in one click: the overview is empty again
    console.get(server.url("/console/"))
    console.find_element(By.ID, "demo-remove").click()
    until(console, lambda b: b.find_elements(By.ID, "overview-empty"), "the empty overview again")
    assert "サンプルデータを消しました" in console.find_element(By.TAG_NAME, "main").text
    assert Analytics(server.redis).funnel()["started"] == 0


def test_the_funnel_block_adds_up_in_plain_words(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    http = Http(server.base)
    for answers in ("AAAAAAAAAA", "AAAAAAABBC", "ABC"):  # two finish, one is at Q4
        user = LineUser(http, server.fake_line, time.time)
        user.follow()
        user.tap("s")
        for q, letter in enumerate(answers):
            user.tap(f"a:1:{q}:{letter}")
    analytics = Analytics(server.redis)
    eventually(lambda: analytics.funnel()["started"] == 3 and analytics.funnel()["finished"] == 2
               and analytics.funnel()["questions"][3]["shown"] == 3, "the figures, the third user's Q4 too")

    def shown() -> bool:  # the overview seen at the login may be kept a few seconds (CRMBOT_CONSOLE_FIGURES_SECONDS)
        console.get(server.url("/console/"))
        return text_of(console, "#fig-started") == "3"

    eventually(shown, "the overview's figures, once its kept ones are older than the cache's time")
    assert [text_of(console, f"#fig-{x}") for x in ("started", "finished", "in-progress", "stopped")] == \
        ["3", "2", "1", "0"]
    assert "診断開始 3 ＝ 完了 2 ＋ 回答中 1 ＋ 中断 0" in text_of(console, "#figures-sum")
    row = [td.text for td in console.find_elements(By.CSS_SELECTOR, "#table-funnel tr[data-q='4'] td")]
    assert row[1:] == ["3", "2", "1", "0", "0.0%"]  # shown 3 = answered 2 + still at it 1 + stopped 0
    headers = [th.text for th in console.find_elements(By.CSS_SELECTOR, "#table-funnel th")]
    assert headers[1:] == ["表示", "回答", "回答中", "ここで中断", "離脱率"]
    assert "回答中の診断は、離脱に数えません" in text_of(console, "#funnel-note")
    rows = console.find_elements(By.CSS_SELECTOR, "#table-tiers tbody tr")
    days = [tr.find_element(By.TAG_NAME, "td").text for tr in rows]
    assert days == sorted(days, reverse=True)  # newest first


def test_a_parked_message_says_who_what_why_and_can_be_discarded(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    user = LineUser(Http(server.base), server.fake_line, time.time)
    server.fake_line.fail(REPLY, 404, times=1)
    user.follow()
    eventually(lambda: server.redis.zcard("crmbot:{q0}:parked") + sum(
        server.redis.zcard(f"crmbot:{{q{i}}}:parked") for i in range(1, 8)), "the reply parked")
    analytics = Analytics(server.redis)

    def named() -> dict[str, str]:  # kept once the follow is counted (as the profile fetch keeps it)
        analytics.set_name("line", user.user_id, "みなと商店")
        return analytics.names([f"line:{user.user_id}"])

    eventually(named, "the follower's name kept")
    console.get(server.url("/console/delivery"))
    card = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, "#parked-list li.parked"), "the parked card")[0]
    assert card.find_element(By.CSS_SELECTOR, ".parked-who").text == "みなと商店 さん（LINE）"
    assert card.find_element(By.CSS_SELECTOR, ".parked-what").text == "あいさつ"
    assert "送り先が見つかりません" in card.find_element(By.CSS_SELECTOR, ".parked-answer").text
    assert "破棄してください" in card.find_element(By.CSS_SELECTOR, ".parked-todo").text
    assert user.user_id not in console.find_element(By.TAG_NAME, "main").text
    card.find_element(By.CSS_SELECTOR, ".discard-form button").click()
    until(console, lambda b: b.find_elements(By.ID, "parked-none"), "the list emptied")
    assert "このメッセージを破棄しました" in console.find_element(By.TAG_NAME, "main").text
