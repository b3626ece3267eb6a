"""Steps of the try-it chat in the browser, shared by the browser tests."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Server, until


def bot_texts(browser: Any) -> list[str]:
    """The bot's messages as shown, read in one step: the page may replace them between two reads of an
    element (Chromium then refuses the second: "Node ... does not belong to the document")."""
    return list(browser.execute_script(
        "return Array.from(document.querySelectorAll('#log .msg-bot'), function (e) { return e.innerText.trim(); });"))


def tap(browser: Any, css: str, what: str) -> None:
    """Click the quick reply matching ``css`` once it is there."""
    from selenium.webdriver.common.by import By

    def click(b: Any) -> bool:
        found = b.find_elements(By.CSS_SELECTOR, css)
        if not found or not found[0].is_enabled():
            return False
        found[0].click()
        return True

    until(browser, click, what)


def wait_question(browser: Any, number: int) -> None:
    from selenium.webdriver.common.by import By

    def shown(b: Any) -> bool:
        texts = bot_texts(b)
        asking = texts and texts[-1].startswith(f"Q{number}/10")
        return bool(asking and b.find_elements(By.CSS_SELECTOR, "#replies button[data-choice]"))

    until(browser, shown, f"question {number} with its buttons")


def open_try(browser: Any, server: Server) -> None:
    browser.get(server.url("/console/try/"))
    until(browser, lambda b: any("友だち追加" in t for t in bot_texts(b)), "the greeting")


def take_diagnosis(browser: Any, answers: str) -> Any:
    """Start and answer every question by tapping; returns the result card."""
    from selenium.webdriver.common.by import By

    tap(browser, "#replies button[data-data='s']", "the start button")
    for i, letter in enumerate(answers, start=1):
        wait_question(browser, i)
        tap(browser, f"#replies button[data-choice='{letter}']", f"choice {letter} of question {i}")
    return until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "#log .card"), "the result card")[0]
