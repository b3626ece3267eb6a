"""The try-it chat in a real browser: greeted, ten questions answered by tapping (one typed), the
result card, back and start over, a new test; the page loads nothing from anywhere but the app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conversations import keys
from conversations.analytics import Analytics, PeerFigures, delta_of
from conversations.keys import Subject
from conversations.machine import ASKING, DONE, Conv
from conversations.outputs import Result
from tests.browser.chat import bot_texts, open_try, take_diagnosis, tap, wait_question
from tests.browser.conftest import Server, resources, screenshot, until

ANSWERS = "AAAABAAACA"  # 8 A's: B評価; the weakest answer is the C at Q9
FIRST_QUESTION_SKIP = "#replies button[data-data='f:0:0']"  # the first qualification question's 答えない

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
    # the answers, folded at the end of the card (read as the page holds them)
    badges = [e.get_attribute("textContent") for e in card.find_elements(By.CSS_SELECTOR, ".rows .grade")]
    assert "".join(badges) == ANSWERS
    assert "Q1 " in card.find_element(By.CSS_SELECTOR, ".rows").get_attribute("textContent")  # beside its topic
    users = [e.text for e in console.find_elements(By.CSS_SELECTOR, "#log .msg-user")]
    assert users[0] == "診断をはじめる" and users[5] == "ｂ" and users[1].startswith("A: ")
    # the first qualification question follows the result, with its buttons (its skip last); the offers come
    # one a reply after the questions (tests/conversations/test_qualify_sources.py)
    until(console, lambda b: b.find_elements(By.CSS_SELECTOR, FIRST_QUESTION_SKIP), "the first question's buttons")
    for q in range(3):  # skipped: the last one's thanks brings the follow-ups' offer, its answer the reminder's
        tap(console, f"#replies button[data-data='f:{q}:0']", f"skip of qualification question {q + 1}")
    tap(console, "#replies button[data-data='t:1:1']", "the follow-ups' yes")
    tap(console, "#replies button[data-data='o:1']", "the reminder's yes")

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
    # a new test is asked first: "cancel" keeps this one
    console.find_element("id", "reset").click()
    dialog = until(console, lambda b: b.find_element("id", "reset-confirm").get_attribute("open") is not None
                   and b.find_element("id", "reset-confirm"), "the confirmation")
    assert "新しいテストを始めますか" in dialog.text
    console.find_element("id", "reset-no").click()
    until(console, lambda b: b.find_element("id", "reset-confirm").get_attribute("open") is None, "the box closed")
    assert len(bot_texts(console)) == before  # nothing thrown away (a reset would reload to the greeting)
    assert server.redis.exists(*server.redis.keys("crmbot:{u:web:*}:conv"))
    console.find_element("id", "reset").click()
    until(console, lambda b: b.find_element("id", "reset-confirm").get_attribute("open") is not None, "asked again")
    console.find_element("id", "reset-yes").click()
    until(console, lambda b: len(bot_texts(b)) == 1 and "友だち追加" in bot_texts(b)[0], "a clean chat for a new test")


def test_the_menu_bar_does_what_the_rich_menu_does_and_a_new_result_shows_from_its_top(console: Any,
                                                                                      server: Server) -> None:
    from selenium.webdriver.common.by import By

    open_try(console, server)
    labels = [e.text for e in console.find_elements(By.CSS_SELECTOR, "#menu .try-menu-item")]
    assert labels == ["診断する", "結果を見る", "相談する"]  # the rich menu's three areas, from the script
    def said(word: str) -> Any:
        return lambda b: [e.text for e in b.find_elements(By.CSS_SELECTOR, "#log .msg-user")][-1:] == [word]

    console.find_element(By.CSS_SELECTOR, "#menu [data-kind='start']").click()
    until(console, said("診断する"), "the start word sent as the user's message")
    for i, letter in enumerate("AAAAAAABBC", start=1):
        wait_question(console, i)
        tap(console, f"#replies button[data-choice='{letter}']", f"choice {letter} of question {i}")
    until(console, lambda b: b.find_elements(By.CSS_SELECTOR, FIRST_QUESTION_SKIP), "the first question")
    console.find_element(By.CSS_SELECTOR, "#menu [data-kind='result']").click()  # 「結果」: the result again
    until(console, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#log .card")) == 2, "the result shown again")

    def headline_at_top(b: Any) -> bool:
        top = b.execute_script("""
            var cards = document.querySelectorAll('#log .card');
            var head = cards[cards.length - 1].querySelector('.card-head').getBoundingClientRect();
            var log = document.getElementById('log').getBoundingClientRect();
            return [head.top - log.top, log.bottom - head.bottom];""")
        return 0 <= top[0] <= 40 and top[1] > 0  # the new card's headline first, not scrolled past

    until(console, headline_at_top, "the new result card's headline at the top of the chat")
    console.find_element(By.CSS_SELECTOR, "#menu [data-kind='consult']").click()
    until(console, said("相談する"), "the consult word sent")


PHONE = (390, 844)  # a phone's CSS width and height


def test_on_a_phone_the_one_point_to_fix_is_on_the_first_screen(console: Any, server: Server) -> None:
    """At 390 px the result card is shown from its top, and the point to fix (its title and the start of
    its advice) lies within the first screen, also once the first qualification question has come after it; the
    plan follows it and the answers come last, folded."""
    from selenium.webdriver.common.by import By

    console.set_window_size(*PHONE)
    try:
        width = console.execute_script("return window.innerWidth;")
        assert width <= PHONE[0]
        open_try(console, server)
        card = take_diagnosis(console, "CAAABAADAA")  # 7 A: B評価; the point is Q8 (D), the plan Q8, Q1, Q5
        # the first qualification question comes after the card, with its buttons
        until(console, lambda b: b.find_elements(By.CSS_SELECTOR, FIRST_QUESTION_SKIP), "the first question")
        until(console, lambda b: b.execute_script("return document.getElementById('typing').hidden;"),
              "the last message")

        def on_screen(b: Any) -> dict[str, float] | None:
            found = b.execute_script("""
                var log = document.getElementById('log').getBoundingClientRect();
                var title = document.querySelector('#log .card .point-title').getBoundingClientRect();
                var text = document.querySelector('#log .card .point .point-text').getBoundingClientRect();
                return {top: title.top, bottom: title.bottom, text_top: text.top, log_top: log.top,
                        log_bottom: log.bottom, height: window.innerHeight};""")
            bottom = min(found["height"], found["log_bottom"])
            inside = found["top"] >= found["log_top"] and found["bottom"] <= bottom and found["text_top"] + 20 <= bottom
            return found if inside else None

        until(console, on_screen, "the point to fix within the first screen")
        assert "Q8" in card.find_element(By.CSS_SELECTOR, ".point-title").text
        steps = [e.text for e in card.find_elements(By.CSS_SELECTOR, ".plan-steps .plan-title")]
        assert [s.split()[0] for s in steps] == ["Q8", "Q1", "Q5"]
        order = console.execute_script("""
            var card = document.querySelector('#log .card');
            return ['.point', '.plan', '.summary', 'details.answers'].map(function (s) {
                return card.querySelector(s).getBoundingClientRect().top; });""")
        assert order == sorted(order), order
        answers = card.find_element(By.CSS_SELECTOR, "details.answers")
        assert answers.get_attribute("open") is None  # folded: the heading shows, the rows do not
        assert not card.find_element(By.CSS_SELECTOR, ".rows").is_displayed()
    finally:
        console.set_window_size(420, 860)


def finished_elsewhere(server: Server, count: int, answers: list[str]) -> None:
    """``count`` diagnoses finished on LINE by other shops, counted as the worker counts them (the figures
    each step commits, applied): the try page's own diagnoses are tests and never count."""
    figures = Analytics(server.redis)
    now = time.time()
    for n in range(count):
        done = answers[n % len(answers)]
        before = Conv(state=ASKING, sid=1, q=9, answers=done[:9], updated=now, begun=now, n=10)
        after = Conv(state=DONE, sid=1, last=done, finished=now, updated=now, begun=now, n=11)
        delta = delta_of(before, after, (Result(1, done),), Subject("line", f"U{n:032x}"), now)
        assert delta is not None
        figures.apply(delta, now=now)
    assert PeerFigures(server.redis).counts().finished >= count


def test_once_thirty_shops_have_finished_the_card_says_how_many_answer_a(console: Any, server: Server,
                                                                        tmp_path: Path) -> None:
    """The peer line under the point to fix and each step of the plan (the README's picture of the card)."""
    from selenium.webdriver.common.by import By

    # of 30 shops, 9 answered A to Q9 (30%) and 16 to Q5 (53%: said 55%)
    finished_elsewhere(server, 30, ["AAAAAAAAAA"] * 9 + ["AAAAAAAABA"] * 7 + ["AAAABAAABA"] * 14)
    open_try(console, server)
    card = take_diagnosis(console, ANSWERS)  # the point: Q9 (C); the plan: Q9, Q5 (B)
    assert card.find_element(By.CSS_SELECTOR, ".point .peer").text == "この項目でAと答えたショップは30%です。"
    assert [e.text for e in card.find_elements(By.CSS_SELECTOR, ".plan-steps .peer")] == [
        "この項目でAと答えたショップは30%です。", "この項目でAと答えたショップは55%です。"]
    until(console, lambda b: b.find_elements(By.CSS_SELECTOR, FIRST_QUESTION_SKIP), "the first question's buttons")
    until(console, lambda b: b.execute_script("return document.getElementById('typing').hidden;"), "the last message")
    console.set_window_size(430, 1000)  # the README's picture: the result card from its top
    try:
        console.execute_script("arguments[0].scrollIntoView({block: 'start'})", card)
        screenshot(console, "console-try.png", tmp_path)
    finally:
        console.set_window_size(420, 860)
