"""The delivery page shows this month's pushes by kind against the push budget (bot/push_budget.py), in a real
browser: what was counted this month (a follow-up, a nudge, a booking reminder, a retake multicast to three), the
held and dropped ones, and the budget (none configured: 上限なし)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bot.push_budget import PushBudget
from tests.browser.conftest import Server, until


def test_the_delivery_page_shows_this_months_pushes_by_kind(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    budget = PushBudget(server.redis, 2)
    now = time.time()
    for kind, n in (("followup", 1), ("nudge", 1), ("booking_reminder", 1), ("retake", 3)):
        assert budget.reserve(str(uuid.uuid4()), kind, now, n=n, must=kind not in ("nudge", "followup")) == 1
    assert budget.reserve(str(uuid.uuid4()), "nudge", now) == 0  # over a budget of two: held
    budget.dropped("nudge", now, "the diagnosis moved on")
    console.get(server.url("/console/delivery"))
    section = until(console, lambda b: b.find_elements(By.ID, "push-budget"), "the budget card")[0]
    assert section.find_element(By.ID, "budget-used").text == "6"
    assert section.find_element(By.ID, "budget-limit").text == "上限なし"  # the server runs with no budget
    rows = {r.get_attribute("data-kind"): [c.text for c in r.find_elements(By.TAG_NAME, "td")]
            for r in section.find_elements(By.CSS_SELECTOR, "#budget-kinds tbody tr")}
    assert rows == {
        "booking_reminder": ["相談予約のリマインド", "1", "0", "0"],
        "followup": ["改善ポイントのヒント", "1", "0", "0"],
        "nudge": ["中断した診断へのお知らせ", "1", "1", "1"],
        "retake": ["再診断のご案内", "3", "0", "0"],
    }
