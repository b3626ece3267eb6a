"""The console in a real browser: the login (a wrong password shows the error, the right one lands on
the overview), and the try-it page reached from the console's navigation."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Server, log_in, until


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


def test_the_nav_leads_to_the_try_page(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    console.find_element(By.ID, "nav-try").click()
    until(console, lambda b: b.current_url == server.url("/console/try/"), "the try page")
    until(console, lambda b: any("友だち追加" in e.text for e in b.find_elements(By.CSS_SELECTOR, "#log .msg-bot")),
          "the greeting")
    console.find_element(By.CSS_SELECTOR, ".try-console").click()
    until(console, lambda b: b.current_url == server.url("/console/"), "back on the overview")
