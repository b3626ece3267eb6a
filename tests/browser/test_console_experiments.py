"""The experiment page in a real browser against a real ``crmbot serve`` (web app and worker) whose content file has
two experiments: LINE users of both variants take the diagnosis, the page counts them per variant, the operator
ends the experiment with the form, the audit log shows it, and a new diagnosis the hash would give the other
variant is shown the winner's text."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from conversations import experiments
from conversations.content import load_script
from conversations.redis_ops import runner
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_experiments import users_with
from tests.browser.conftest import Http, Server, eventually, until
from tests.conversations.experiment_content import CTA_B, content_dir


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    yield {"CRMBOT_CONTENT_DIR": content_dir(tmp_path_factory.mktemp("experiments"))}


def take(server: Server, user_id: str, *, consult: bool = False) -> LineUser:
    user = LineUser(Http(server.base), server.fake_line, time.time, user_id)
    user.follow()
    user.tap("s")
    for q in range(10):
        user.tap(f"a:1:{q}:C")
    if consult:
        user.tap("k:1")
    return user


def test_the_page_counts_each_variant_and_ending_shows_the_winner(console: Any, server: Server,
                                                                   server_env: dict[str, str]) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    cta = load_script("ja", server_env["CRMBOT_CONTENT_DIR"]).experiments[0]
    a_users, b_users = users_with(cta, "a", 3), users_with(cta, "b", 2)
    for uid in a_users:
        take(server, uid)
    for i, uid in enumerate(b_users):
        take(server, uid, consult=i == 0)
    redis = runner(server.redis)
    eventually(lambda: experiments.read(redis, cta).counts == {
        "a": experiments.Counts(3, 3, 0, 0, 0), "b": experiments.Counts(2, 2, 1, 0, 1)}, "the diagnoses counted")

    console.find_element(By.ID, "nav-experiments").click()
    section = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, 'section[data-experiment="consult-cta"]'),
                    "the experiment's section")[0]
    assert console.find_element(By.TAG_NAME, "h1").text == "文面のテスト（A/Bテスト）"
    rows = {tr.get_attribute("data-variant"): [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
            for tr in section.find_elements(By.CSS_SELECTOR, ".experiment-table tbody tr")}
    assert rows["a"][2:] == ["3", "3", "0", "0", "100%", "0%"]
    assert rows["b"][1:] == [CTA_B["ja"], "2", "2", "1", "0", "100%", "50%"]
    verdict = section.find_element(By.CSS_SELECTOR, '.experiment-verdicts li[data-variant="b"]').text
    assert "偶然でも出る程度" in verdict and "各案であと" in verdict  # 0 of 3 against 1 of 2: no conclusion

    Select(section.find_element(By.NAME, "winner")).select_by_value("b")
    section.find_element(By.CSS_SELECTOR, ".end-button").click()
    notice = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, ".notice.ok"), "the notice")[0]
    assert "全員に案「b」を表示します" in notice.text
    section = console.find_element(By.CSS_SELECTOR, 'section[data-experiment="consult-cta"]')
    assert section.find_elements(By.CSS_SELECTOR, ".experiment-ended")
    assert not section.find_elements(By.CSS_SELECTOR, ".end-experiment")
    console.find_element(By.ID, "nav-audit").click()
    until(console, lambda b: "文面テストを終了" in b.page_source, "the audit log's entry")

    newcomer = users_with(cta, "a", 1, skip=3)[0]  # the hash would show it the file's own button
    take(server, newcomer)
    label = f'"label":"{CTA_B["ja"]}"'
    eventually(lambda: label in json.dumps(server.fake_line.delivered(newcomer), ensure_ascii=False,
                                           separators=(",", ":")), "the winner's button for a new diagnosis")
