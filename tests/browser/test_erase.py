"""The console's delete button on a lead page, in a real browser against a real ``crmbot serve``: without the
confirmation ticked nothing is removed; ticked, every key of the person goes, the audit stream says the
operator did it, and the other person's lead stays."""

from __future__ import annotations

import json
import time
from typing import Any

from conversations.analytics import Analytics
from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, until


def finish(server: Server, answers: str) -> LineUser:
    user = LineUser(Http(server.base), server.fake_line, time.time)
    user.follow()
    user.tap("s")
    for q, letter in enumerate(answers):
        user.tap(f"a:1:{q}:{letter}")
    return user


def keys_naming(server: Server, user_id: str) -> list[bytes]:
    return list(server.redis.scan_iter(match=f"*{user_id}*", count=1000))


def test_the_operator_deletes_a_person_from_the_lead_page(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    gone, stays = finish(server, "ABCDABCDAB"), finish(server, "AAAAAAAAAA")
    figures = Analytics(server.redis)
    eventually(lambda: len(figures.person("line", gone.user_id)) == 1 == len(figures.person("line", stays.user_id))
               and figures.funnel()["finished"] == 2
               and not list(server.redis.scan_iter(match="crmbot:{u:line:*}:out")), "both diagnoses counted")
    before = figures.funnel()
    [lead] = figures.person("line", gone.user_id)

    console.get(server.url(f"/console/leads/{lead.id}"))
    button = until(console, lambda b: b.find_elements(By.ID, "erase-button"), "the delete button")[0]
    # The browser refuses to send the form unticked (required); sent anyway, the server refuses it too.
    console.execute_script("document.getElementById('erase-confirm').required = false")
    button.click()
    until(console, lambda b: b.find_elements(By.CSS_SELECTOR, "p.notice.error"),
          "the refusal")
    assert keys_naming(server, gone.user_id), "nothing removed without the confirmation"

    console.find_element(By.ID, "erase-confirm").click()
    console.find_element(By.ID, "erase-button").click()
    until(console, lambda b: b.current_url.rstrip("/").endswith("/console/leads"), "the leads list after it")
    assert keys_naming(server, gone.user_id) == []
    assert figures.person("line", gone.user_id) == []
    assert figures.funnel() == before  # an anonymous count now
    assert figures.person("line", stays.user_id)
    rows = console.find_elements(By.CSS_SELECTOR, "#leads-table tr.lead-row")
    assert len(rows) == 1 and "AAAAAAAAAA" in rows[0].text
    [(_, entry)] = server.redis.xrange("crmbot:{audit}:erasures")
    fields = {k.decode(): v.decode() for k, v in entry.items()}
    assert fields["by"] == "console" and gone.user_id not in json.dumps(fields)  # the shared login's name
    assert json.loads(fields["removed"])["leads"] == 1
