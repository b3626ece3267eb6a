"""A lead an operator works, in a real browser against a real ``crmbot serve``, on leads made by LINE users
through signed webhooks: no console URL holds a LINE user ID (a crawl of every link from the overview); a
note, the assignee and a status change show with who and when in the lead's history; the advice is the
one for the owner's answer level; the leads list searches, counts, sorts and pages; the nav's badge opens
the new requests."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from conversations.analytics import Analytics, lead_id
from conversations.content import load_script
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, resources, screenshot, until

# Four LINE users: B at Q10 (the point to fix at level B), C at Q10 (level C), all D, one who stopped.
PEOPLE = {"b": "AAAAAAAAAB", "c": "AAAAAAAAAC", "d": "DDDDDDDDDD", "stop": "AB"}


@pytest.fixture(scope="module")
def people(server: Server) -> dict[str, LineUser]:
    http = Http(server.base)
    found = {}
    for name, answers in PEOPLE.items():
        user = LineUser(http, server.fake_line, time.time)
        user.follow()
        user.tap("s")
        for q, letter in enumerate(answers):
            user.tap(f"a:1:{q}:{letter}")
        found[name] = user
    figures = Analytics(server.redis)

    def applied() -> bool:  # the worker counts each step before it delivers the reply
        f = figures.funnel()
        waiting = list(server.redis.scan_iter(match="crmbot:{u:line:*}:out"))
        return f["started"] == 4 and f["finished"] == 3 and not waiting

    eventually(applied, "the worker to deliver and count every step")
    figures.set_name("line", found["b"].user_id, "山田商店")
    return found


def rows(browser: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row"))


def open_lead(browser: Any, server: Server, text: str) -> None:
    """The lead's page from its row in the list, as an operator gets there."""
    from selenium.webdriver.common.by import By

    browser.get(server.url("/console/leads"))
    row = next(r for r in rows(browser) if text in r.text)
    row.find_element(By.TAG_NAME, "a").click()
    until(browser, lambda b: b.find_elements(By.ID, "lead-work"), "the lead's page")


def crawl(browser: Any, server: Server, ids: list[str]) -> set[str]:
    """From the overview, every same-origin link of every page reached is opened; no address of a page, a link,
    a form or anything a page loaded names one of ``ids``, nor does any page's HTML. The addresses opened."""
    origin = urlsplit(server.base).netloc
    seen: set[str] = set()
    todo = [server.url("/console/")]
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        browser.get(url)
        until(browser, lambda b: b.execute_script("return document.readyState") == "complete", f"{url} loaded")
        assert not [x for x in ids if x in browser.current_url or x in browser.page_source], url
        assert not [r for r in resources(browser) if any(x in r for x in ids)], url
        found = browser.execute_script(
            "return Array.from(document.querySelectorAll('a[href], link[href], img[src], script[src], form[action]'))"
            ".map(function (e) { var raw = e.getAttribute('href') || e.getAttribute('src') || e.getAttribute('action');"
            " return [e.tagName, (e.getAttribute('method') || 'get').toLowerCase(),"
            " new URL(raw || '', document.baseURI).href]; })")  # attributes: a form's input may be named "action"
        for tag, method, target in found:
            assert not [x for x in ids if x in target], (url, target)
            parts = urlsplit(target)
            if (tag == "A" and parts.netloc == origin and parts.path.startswith("/console")
                    and "/export/" not in parts.path and not parts.path.endswith(".ics")):
                todo.append(target.split("#", 1)[0])
            elif tag == "FORM" and method == "get" and parts.netloc == origin:
                todo.append(target)
    return seen


def test_no_console_url_holds_a_line_user_id(console: Any, server: Server, people: dict[str, LineUser]) -> None:
    """A crawl of every link from the overview (:func:`crawl`) finds no scripted user's ID."""
    Analytics(server.redis).set_consult_status(
        Analytics(server.redis).person("line", people["c"].user_id)[-1].id, "new", by="console", now=time.time())
    seen = crawl(console, server, [u.user_id for u in people.values()])
    lead_pages = [u for u in seen if "/console/leads/" in u]
    assert len(lead_pages) == 4 and [u for u in seen if "/console/people/" in u], sorted(seen)


def test_note_assignee_and_status_show_in_the_history(console: Any, server: Server, people: dict[str, LineUser],
                                                      tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_lead(console, server, "山田商店")
    assert console.find_element(By.ID, "no-history").is_displayed()
    console.find_element(By.ID, "assignee-name").send_keys("佐藤")
    console.find_element(By.ID, "assign-save").click()
    until(console, lambda b: b.find_element(By.ID, "assignee-current").text == "佐藤", "the assignee")

    console.find_element(By.ID, "note-text").send_keys("お電話で日程を相談。\n来週もう一度ご連絡。")
    console.find_element(By.ID, "note-save").click()
    note = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, "#notes-list .lead-note"), "the note")
    assert len(note) == 1
    assert note[0].find_element(By.CLASS_NAME, "note-text").text == "お電話で日程を相談。\n来週もう一度ご連絡。"
    assert note[0].find_element(By.CLASS_NAME, "note-by").text == "console"
    assert note[0].find_element(By.CLASS_NAME, "note-at").text  # when

    Select(console.find_element(By.ID, "consult-status")).select_by_value("contacted")
    console.find_element(By.ID, "consult-save").click()
    until(console, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#lead-history tr.history-row")) == 2,
          "two changes in the history")
    history = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
               for tr in console.find_elements(By.CSS_SELECTOR, "#lead-history tr.history-row")]
    assert [(by, change) for _, by, change in history] == [
        ("console", "相談状況：相談なし → 連絡済み"), ("console", "担当者：未定 → 佐藤")]
    assert all(when for when, _, _ in history)
    console.set_window_size(1280, 1100)
    try:
        console.execute_script("document.getElementById('lead-consult').scrollIntoView()")
        screenshot(console, "console-lead-work.png", tmp_path)
    finally:
        console.set_window_size(420, 860)
    # the assignee's name is offered on another lead's page
    open_lead(console, server, "DDDDDDDDDD")
    offered = [o.get_attribute("value") for o in console.find_elements(By.CSS_SELECTOR, "#assignee-names option")]
    assert "佐藤" in offered


def test_the_advice_is_the_one_for_the_answers_level(console: Any, server: Server,
                                                     people: dict[str, LineUser]) -> None:
    from selenium.webdriver.common.by import By

    q10 = load_script("ja").questions[9]
    for answers, advice in [("AAAAAAAAAB", q10.advice_b), ("AAAAAAAAAC", q10.advice_cd)]:
        open_lead(console, server, answers)
        shown = console.find_element(By.ID, "lead-advice-text")
        assert shown.get_attribute("data-level") == answers[-1]
        assert " ".join(shown.text.split()) == " ".join(advice.split()), answers


def test_leads_search_count_sort_page_and_the_badge(console: Any, server: Server, people: dict[str, LineUser],
                                                    tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # 55 more finished diagnoses, older than the scripted ones, straight into the figures (a page is 50)
    figures = Analytics(server.redis)
    start = time.time() - 30 * 86400
    for i in range(55):
        begun = round(start + i * 60, 3)
        tier, answers = [("A", "AAAAAAAAAA"), ("B", "AAAAAAABBC"), ("C", "DDDDDDDDDD")][i % 3]
        figures.apply({"at": begun, "lead": {
            "id": lead_id("line", f"Ubulk{i:03d}", 1, begun), "channel": "line", "user": f"Ubulk{i:03d}", "sid": 1,
            "n": 1, "begun": begun, "updated": begun + 60, "reached": 10, "remind": 0, "open": 0,
            "answers": answers, "finished": begun + 60, "tier": tier}}, now=begun + 60)
    total = len(figures.leads(limit=None))
    assert total == 59
    console.get(server.url("/console/leads"))
    assert console.find_element(By.ID, "leads-total").text == f"{total}件"
    assert len(rows(console)) == 50
    pager = console.find_element(By.ID, "leads-pager")
    assert [x.text for x in pager.find_elements(By.CLASS_NAME, "page-number")] == ["1", "2"]
    pager.find_element(By.CSS_SELECTOR, "a.page-number").click()
    until(console, lambda b: "page=2" in b.current_url, "page 2")
    assert len(rows(console)) == total - 50
    assert console.find_element(By.CSS_SELECTOR, "#leads-pager [aria-current=page]").text == "2"
    console.set_window_size(1280, 1000)
    try:
        screenshot(console, "console-leads.png", tmp_path)
    finally:
        console.set_window_size(420, 860)
    assert console.find_element(By.ID, "leads-total").text == f"{total}件"

    # search by name
    box = console.find_element(By.ID, "filter-search")
    box.clear()
    box.send_keys("山田")
    console.find_element(By.ID, "filter-apply").click()
    until(console, lambda b: "q=" in b.current_url, "the search")
    assert [r.text.split()[0] for r in rows(console)] == ["山田商店"]
    assert console.find_element(By.ID, "leads-total").text == "1件"

    # sort by tier: A first, then B, C, the unfinished last
    console.find_element(By.ID, "filter-search").clear()
    Select(console.find_element(By.ID, "filter-sort")).select_by_value("tier")
    console.find_element(By.ID, "filter-apply").click()
    until(console, lambda b: "sort=tier" in b.current_url, "the sort")
    tiers = [r.get_attribute("data-tier") for r in rows(console)]
    assert tiers == sorted(tiers, key=lambda x: "ABC".index(x) if x else 3) and tiers[0] == "A"
    console.find_element(By.ID, "page-next").click()
    until(console, lambda b: "page=2" in b.current_url, "the sort's page 2")
    assert [r.get_attribute("data-tier") for r in rows(console)][-1] == ""  # the one who stopped: last

    # the badge: the new requests
    figures.set_consult_status(figures.person("line", people["c"].user_id)[-1].id, "new", by="console",
                               now=time.time())
    console.refresh()
    badge = console.find_element(By.ID, "open-consult-badge")
    assert badge.text == "1"
    badge.click()
    until(console, lambda b: "consult=new" in b.current_url, "the new requests")
    assert [r.get_attribute("data-consult") for r in rows(console)] == ["new"]
    assert Select(console.find_element(By.ID, "filter-consult")).first_selected_option.get_attribute("value") == "new"
