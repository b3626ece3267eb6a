"""The console's content page in a real browser against a real ``crmbot serve`` (web app and worker): a bad file is
refused with its line and field, a good one becomes a draft that the try page runs in this browser, publishing
makes a LINE user's new diagnosis speak it, and one click goes back to the earlier version."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from conversations.content import SCRIPTS_DIR
from tests.bot.line.helpers import LineUser
from tests.browser.chat import bot_texts, tap, wait_question
from tests.browser.conftest import Http, Server, eventually, screenshot, until

JA = (SCRIPTS_DIR / "diagnosis.ja.toml").read_text(encoding="utf-8")
OLD_Q1 = "売上の合計ではなく、"


def file_with(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def upload(browser: Any, path: str) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.ID, "upload-file").send_keys(path)
    browser.find_element(By.ID, "upload-submit").click()


def first_question(server: Server, user: LineUser) -> str:
    """The first question a new diagnosis on LINE sends, as the server's worker delivered it."""
    user.tap("s")
    return str(eventually(lambda: next((m["text"] for m in server.fake_line.delivered(user.user_id)
                                        if m.get("text", "").startswith("Q1/10")), None),
                          "the first question on LINE"))


def test_a_bad_upload_then_a_draft_tried_published_and_rolled_back(console: Any, server: Server,
                                                                    tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    console.find_element(By.ID, "nav-content").click()
    until(console, lambda b: b.find_elements(By.ID, "upload-form"), "the content page's upload form")
    assert console.find_element(By.ID, "active-label").text == "デプロイされたファイル"

    bad = JA.replace('start_button = "診断をはじめる"', 'start_button = ""', 1)
    line = next(n for n, t in enumerate(bad.splitlines(), start=1) if 'start_button = ""' in t)
    upload(console, file_with(tmp_path, "bad.toml", bad))
    problem = until(console, lambda b: b.find_elements(By.ID, "content-problem"), "the problem")[0]
    assert f"{line}行目" in problem.text and "texts.start_button" in problem.text
    assert "何も変更していません" in problem.text
    assert console.find_elements(By.ID, "content-none")  # nothing published

    upload(console, file_with(tmp_path, "one.toml", JA.replace(OLD_Q1, "（第1版）" + OLD_Q1)))
    until(console, lambda b: b.find_elements(By.ID, "content-draft"), "the draft")
    draft_page = console.current_url
    console.find_element(By.ID, "draft-try").click()
    until(console, lambda b: b.find_elements(By.ID, "draft-badge"), "the try page in the draft")
    until(console, lambda b: any("友だち追加" in t for t in bot_texts(b)), "the greeting")
    tap(console, "#replies button[data-data='s']", "the start button")
    wait_question(console, 1)
    assert "（第1版）" + OLD_Q1 in bot_texts(console)[-1]
    before = first_question(server, LineUser(Http(server.base), server.fake_line, time.time))
    assert "（第1版）" not in before  # LINE still speaks the deployed file

    console.get(server.url("/console/content"))
    assert console.find_elements(By.ID, "content-none")  # a draft publishes nothing
    console.get(draft_page)
    until(console, lambda b: b.find_elements(By.ID, "draft-publish"), "the publish button")
    console.find_element(By.ID, "draft-publish").click()
    until(console, lambda b: b.find_element(By.ID, "active-label").text == "v1", "v1 in use")
    assert "（第1版）" + OLD_Q1 in first_question(server, LineUser(Http(server.base), server.fake_line, time.time))

    upload(console, file_with(tmp_path, "two.toml", JA.replace(OLD_Q1, "（第2版）" + OLD_Q1)))
    until(console, lambda b: b.find_elements(By.ID, "draft-publish"), "the second draft")[0].click()
    until(console, lambda b: b.find_element(By.ID, "active-label").text == "v2", "v2 in use")
    assert "（第2版）" in first_question(server, LineUser(Http(server.base), server.fake_line, time.time))
    screenshot(console, "console-content.png", tmp_path)

    console.find_element(By.CSS_SELECTOR, "tr[data-label='v1'] .content-rollback button").click()
    until(console, lambda b: b.find_element(By.ID, "active-label").text == "v1", "back to v1")
    assert "（第1版）" + OLD_Q1 in first_question(server, LineUser(Http(server.base), server.fake_line, time.time))
    console.find_element(By.CSS_SELECTOR, "#use-deployed button").click()
    until(console, lambda b: b.find_element(By.ID, "active-label").text == "デプロイされたファイル",
          "back to the deployed file")
    assert first_question(server, LineUser(Http(server.base), server.fake_line, time.time)) == before
