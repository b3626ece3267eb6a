"""The try-it chat in a real browser: greeted, ten questions answered by tapping (one typed), the
result card, back and start over, a new test; the page loads nothing from anywhere but the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conversations import keys
from conversations.keys import Subject
from tests.browser.chat import bot_texts, open_try, tap, wait_question
from tests.browser.conftest import Server, resources, screenshot, until

ANSWERS = "AAAABAAACA"  # 8 A's: B評価; the weakest answer is the C at Q9


def test_take_the_diagnosis_in_the_browser(console: Any, server: Server, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_try(console, server)
    assert console.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
    tap(console, "#replies button[data-data='s']", "the start button")
    for i, letter in enumerate(ANSWERS, start=1):
        wait_question(console, i)
        if i == 5:  # typed, as on LINE
            box = console.find_element(By.ID, "text")
            box.send_keys("ｂ", Keys.ENTER)
        else:
            tap(console, f"#replies button[data-choice='{letter}']", f"choice {letter} of question {i}")
    card = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, "#log .card"), "the result card")[0]
    assert "B評価" in card.text and "8/10" in card.text
    assert "Q9" in card.find_element(By.CSS_SELECTOR, ".point-title").text
    badges = [e.text for e in card.find_elements(By.CSS_SELECTOR, ".rows .grade")]
    assert "".join(badges) == ANSWERS
    assert "Q1 " in card.find_element(By.CSS_SELECTOR, ".rows").text  # each answer beside its question's topic
    users = [e.text for e in console.find_elements(By.CSS_SELECTOR, "#log .msg-user")]
    assert users[0] == "診断をはじめる" and users[5] == "ｂ" and users[1].startswith("A: ")
    # the reminder question follows the result, with its two buttons
    until(console, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#replies button")) == 2, "the reminder buttons")
    console.set_window_size(430, 1000)  # the README's picture: the result card from its top
    console.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
    screenshot(console, "console-try.png", tmp_path)
    console.set_window_size(420, 860)

    # The same store as LINE: one web user, finished with these answers.
    convs = [k.decode() for k in server.redis.scan_iter(match="crmbot:{u:web:*}:conv")]
    assert len(convs) == 1
    user_id = convs[0].removeprefix("crmbot:{u:web:").removesuffix("}:conv")
    assert b'"last":"' + ANSWERS.encode() + b'"' in server.redis.get(keys.conv(Subject("web", user_id)))
    assert server.fake_line.recorded() == []  # nothing went to LINE
    assert all(url.startswith(server.base + "/") for url in resources(console)), resources(console)


def test_back_start_over_and_a_new_test(console: Any, server: Server) -> None:
    open_try(console, server)
    tap(console, "#replies button[data-data='s']", "the start button")
    wait_question(console, 1)
    tap(console, "#replies button[data-choice='A']", "A")
    wait_question(console, 2)
    tap(console, "#replies button[data-choice='D']", "D")
    wait_question(console, 3)
    tap(console, "#replies button[data-data^='b:']", "back")
    wait_question(console, 2)
    tap(console, "#replies button[data-data='r']", "start over?")
    tap(console, "#replies button[data-data='r:1']", "yes, start over")
    wait_question(console, 1)
    before = len(bot_texts(console))
    assert before > 3
    console.find_element("id", "reset").click()
    until(console, lambda b: len(bot_texts(b)) == 1 and "友だち追加" in bot_texts(b)[0], "a clean chat for a new test")
