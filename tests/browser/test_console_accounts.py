"""Operators' accounts and the audit log in a real browser against a real ``crmbot serve``: the first admin made
from the shared login, a login with an e-mail, the Operators page adding an operator, TOTP enrolment then a
login with a code, the audit page and its filter, a viewer refused, an operator's work on a lead named in its
history and the audit page, and a session the admin revoked logged out at its next request."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp

from bot.console.operators import OperatorStore
from conversations.analytics import Analytics
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, log_in, screenshot, until

ADMIN = ("admin@example.jp", "admin password 1", "管理 花子")
STAFF = ("sato@example.jp", "sato password 1", "佐藤 一郎")
WORKER = ("kato@example.jp", "kato password 1", "加藤 二郎")  # an operator who works a lead


def log_in_as(browser: Any, server: Server, email: str, password: str, code: str = "") -> None:
    """Through the login form with an e-mail, as an operator does."""
    from selenium.webdriver.common.by import By

    browser.get(server.url("/console/login"))
    until(browser, lambda b: b.find_elements(By.ID, "email"), "the e-mail field")[0].send_keys(email)
    browser.find_element(By.ID, "password").send_keys(password)
    if code:
        browser.find_element(By.ID, "code").send_keys(code)
    browser.find_element(By.ID, "login-submit").click()


def ensure_admin(server: Server) -> None:
    """The admin, made here when a test runs without the first one (which makes it in the browser)."""
    store = OperatorStore(server.redis, time.time)
    if store.by_email(ADMIN[0]) is None:
        store.create(ADMIN[0], ADMIN[2], "admin", ADMIN[1], first=not store.any())


def test_the_first_admin_is_made_from_the_shared_login(page: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    assert not OperatorStore(server.redis, time.time).any()  # the module's server starts on an empty database
    log_in(page, server)
    until(page, lambda b: b.current_url.rstrip("/").endswith("/console"), "the overview")
    page.get(server.url("/console/operators"))
    form = until(page, lambda b: b.find_elements(By.ID, "first-admin"), "the first admin's form")[0]
    form.find_element(By.ID, "op-name").send_keys(ADMIN[2])
    form.find_element(By.ID, "op-email").send_keys(ADMIN[0])
    form.find_element(By.ID, "op-password").send_keys(ADMIN[1])
    page.find_element(By.ID, "operator-submit").click()
    until(page, lambda b: b.current_url.endswith("/console/profile"), "the new admin's profile")
    assert page.find_element(By.ID, "nav-profile").text == ADMIN[2]
    # the shared password is closed now: the login form asks for an e-mail
    page.delete_all_cookies()
    page.get(server.url("/console/login"))
    until(page, lambda b: b.find_elements(By.ID, "email"), "the e-mail field")


def test_an_admin_adds_an_operator_who_logs_in_and_shows_in_the_audit(page: Any, server: Server,
                                                                       tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ensure_admin(server)
    log_in_as(page, server, ADMIN[0], "a wrong password")
    error = until(page, lambda b: b.find_elements(By.ID, "login-error"), "the login error")[0]
    assert "メールアドレス、パスワード" in error.text
    log_in_as(page, server, ADMIN[0], ADMIN[1])
    until(page, lambda b: b.find_elements(By.ID, "nav-operators"), "the admin's nav")[0].click()
    page.set_window_size(1280, 1000)
    try:
        form = until(page, lambda b: b.find_elements(By.ID, "operator-new"), "the add form")[0]
        form.find_element(By.ID, "op-name").send_keys(STAFF[2])
        form.find_element(By.ID, "op-email").send_keys(STAFF[0])
        Select(form.find_element(By.ID, "op-role")).select_by_value("viewer")
        form.find_element(By.ID, "op-password").send_keys(STAFF[1])
        form.find_element(By.ID, "operator-submit").click()
        row = until(page, lambda b: b.find_elements(By.CSS_SELECTOR, f"tr.operator[data-email='{STAFF[0]}']"),
                    "the new operator's row")[0]
        assert STAFF[2] in row.text
        screenshot(page, "console-operators.png", tmp_path)
        # the viewer logs in; their POST is refused, and they see no Operators link
        page.find_element(By.CSS_SELECTOR, "#logout-form button").click()
        until(page, lambda b: b.find_elements(By.ID, "email"), "the login form")
        log_in_as(page, server, STAFF[0], STAFF[1])
        until(page, lambda b: b.find_elements(By.ID, "nav-profile"), "the viewer's nav")
        assert page.find_elements(By.ID, "nav-operators") == []
        page.get(server.url("/console/delivery"))
        status = page.execute_async_script(
            "var done = arguments[arguments.length - 1];"
            "var token = document.querySelector('input[name=csrf_token]').value;"
            "fetch('/console/delivery/requeue', {method: 'POST', credentials: 'same-origin',"
            "  headers: {'Content-Type': 'application/x-www-form-urlencoded'},"
            "  body: 'job=x&csrf_token=' + encodeURIComponent(token)})"
            ".then(function (r) { done(r.status); }).catch(function () { done(0); });")
        assert status == 403
        # the audit page names who did what, newest first, and filters by who
        page.find_element(By.ID, "nav-audit").click()
        until(page, lambda b: b.find_elements(By.ID, "audit-table"), "the audit table")
        rows = page.find_elements(By.CSS_SELECTOR, "#audit-table tr.audit-row")
        first = rows[0].find_element(By.CSS_SELECTOR, "td.who").text
        assert first == STAFF[2] and rows[0].get_attribute("data-action") == "login"
        assert any(r.get_attribute("data-action") == "operator.create"
                   and r.find_element(By.CSS_SELECTOR, "td.who").text == ADMIN[2] for r in rows)
        Select(page.find_element(By.ID, "audit-who")).select_by_visible_text(ADMIN[2])
        page.find_element(By.ID, "audit-apply").click()
        until(page, lambda b: "who=" in b.current_url, "the filtered audit")
        whos = {td.text for td in page.find_elements(By.CSS_SELECTOR, "#audit-table td.who")}
        assert whos == {ADMIN[2]}
        href = page.find_element(By.ID, "audit-csv").get_attribute("href")
        assert "/console/export/audit.csv?who=" in href
        screenshot(page, "console-audit.png", tmp_path)
    finally:
        page.set_window_size(420, 860)


def test_totp_enrolment_then_a_login_needs_the_code(page: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    ensure_admin(server)
    log_in_as(page, server, ADMIN[0], ADMIN[1])
    until(page, lambda b: b.find_elements(By.ID, "nav-profile"), "the nav")[0].click()
    secret = until(page, lambda b: b.find_elements(By.ID, "totp-secret"), "the TOTP secret")[0].text
    qr = page.find_element(By.ID, "totp-qr")
    assert page.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", qr)
    totp = pyotp.TOTP(secret)
    page.find_element(By.ID, "totp-code").send_keys(totp.now())
    page.find_element(By.ID, "totp-submit").click()
    until(page, lambda b: b.find_elements(By.ID, "totp-state"), "two-step login on")
    page.find_element(By.CSS_SELECTOR, "#logout-form button").click()
    until(page, lambda b: b.find_elements(By.ID, "email"), "the login form")
    log_in_as(page, server, ADMIN[0], ADMIN[1])  # no code: refused
    until(page, lambda b: b.find_elements(By.ID, "login-error"), "the refusal")
    log_in_as(page, server, ADMIN[0], ADMIN[1], totp.at(time.time() + 30))  # the next step's code
    until(page, lambda b: b.current_url.rstrip("/").endswith("/console"), "the overview")
    # back to no second factor, so the other tests of this module log in without one
    store = OperatorStore(server.redis, time.time)
    admin = store.by_email(ADMIN[0])
    assert admin is not None and admin.has_totp
    store.set_totp(admin.id, "")


def test_an_operators_changes_carry_their_name_and_a_revoked_session_is_logged_out(page: Any, server: Server) -> None:
    """An operator works a lead (note, assignee, status): the lead's page and the audit page name them; the
    admin revokes their session on the Operators page, and the operator's next request is the login page."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    ensure_admin(server)
    store = OperatorStore(server.redis, time.time)
    if store.by_email(WORKER[0]) is None:
        store.create(WORKER[0], WORKER[2], "operator", WORKER[1])
    user = LineUser(Http(server.base), server.fake_line, time.time)
    user.follow()
    user.tap("s")
    for q, letter in enumerate("AAAAAAAAAA"):
        user.tap(f"a:1:{q}:{letter}")
    figures = Analytics(server.redis)
    eventually(lambda: [x for x in figures.person("line", user.user_id) if x.finished]
               and not list(server.redis.scan_iter(match="crmbot:{u:line:*}:out")), "the diagnosis counted")
    figures.set_name("line", user.user_id, "しおさい商店")

    log_in_as(page, server, WORKER[0], WORKER[1])
    until(page, lambda b: b.find_elements(By.ID, "nav-profile"), "the operator's nav")
    page.get(server.url("/console/leads?q=しおさい"))
    page.find_element(By.CSS_SELECTOR, "#leads-table tr.lead-row a").click()
    until(page, lambda b: b.find_elements(By.ID, "lead-work"), "the lead's page")
    page.find_element(By.ID, "note-text").send_keys("火曜にお電話します。")
    page.find_element(By.ID, "note-save").click()
    note = until(page, lambda b: b.find_elements(By.CSS_SELECTOR, "#notes-list .lead-note"), "the note")[0]
    assert note.find_element(By.CLASS_NAME, "note-by").text == WORKER[2]
    page.find_element(By.ID, "assignee-name").send_keys(WORKER[2])
    page.find_element(By.ID, "assign-save").click()
    until(page, lambda b: b.find_element(By.ID, "assignee-current").text == WORKER[2], "the assignee")
    Select(page.find_element(By.ID, "consult-status")).select_by_value("contacted")
    page.find_element(By.ID, "consult-save").click()
    until(page, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#lead-history tr.history-row")) == 2, "the history")
    whos = [tr.find_elements(By.TAG_NAME, "td")[1].text
            for tr in page.find_elements(By.CSS_SELECTOR, "#lead-history tr.history-row")]
    assert whos == [WORKER[2], WORKER[2]]
    kept = page.get_cookie("crmbot_console")
    assert kept

    # the admin, in the same browser (the operator's cookie put aside): the audit page names the operator
    page.delete_all_cookies()
    log_in_as(page, server, ADMIN[0], ADMIN[1])
    until(page, lambda b: b.find_elements(By.ID, "nav-audit"), "the admin's nav")[0].click()
    until(page, lambda b: b.find_elements(By.ID, "audit-table"), "the audit table")
    done = {(r.get_attribute("data-action"), r.find_element(By.CSS_SELECTOR, "td.who").text)
            for r in page.find_elements(By.CSS_SELECTOR, "#audit-table tr.audit-row")}
    assert {("lead.note", WORKER[2]), ("lead.assign", WORKER[2]), ("lead.status", WORKER[2])} <= done
    # ... and revokes the operator's session
    page.find_element(By.ID, "nav-operators").click()
    row = until(page, lambda b: b.find_elements(By.CSS_SELECTOR, f"tr.operator[data-email='{WORKER[0]}']"),
                "the operator's row")[0]
    [revoke] = row.find_elements(By.CSS_SELECTOR, "form.session-row button")
    revoke.click()
    until(page, lambda b: not b.find_element(By.CSS_SELECTOR, f"tr.operator[data-email='{WORKER[0]}']")
          .find_elements(By.CSS_SELECTOR, "form.session-row"), "the session gone from the list")
    # the operator's browser, its cookie back: the next request is the login page
    page.delete_all_cookies()
    page.add_cookie({"name": kept["name"], "value": kept["value"], "path": "/console"})
    page.get(server.url("/console/leads"))
    until(page, lambda b: "/console/login" in b.current_url, "the login page")
    assert page.find_elements(By.ID, "nav") == []
