"""The console's webhook page in a real browser against a real ``crmbot serve`` (web app and worker): an
endpoint is added through the form, its secret is shown on the page that answers and never again, and the
server's worker delivers an owner's consultation request to a receiver on loopback, signed with that secret."""

from __future__ import annotations

import time
from typing import Any

from tests.bot.line.helpers import LineUser
from tests.browser.conftest import Http, Server, eventually, until
from tests.fakes.webhook_receiver import verify, webhook_receiver


def test_an_endpoint_is_added_its_secret_shown_once_and_events_arrive_signed(console: Any, server: Server) -> None:
    from selenium.webdriver.common.by import By

    with webhook_receiver() as receiver:
        console.find_element(By.ID, "nav-webhooks").click()
        until(console, lambda b: b.find_elements(By.ID, "webhook-form"), "the webhook page's form")
        assert console.find_elements(By.ID, "webhooks-none")
        console.find_element(By.ID, "webhook-url").send_keys(receiver.url)
        console.find_element(By.ID, "webhook-create").click()
        shown = until(console, lambda b: b.find_elements(By.ID, "webhook-secret"), "the new secret")[0]
        secret = shown.text
        assert secret.startswith("whsec_") and len(secret) > 40
        assert "今だけ表示" in console.find_element(By.ID, "webhook-created").text
        [listed] = console.find_elements(By.CSS_SELECTOR, "#webhook-list .webhook-url")
        assert listed.text == receiver.url

        console.get(server.url("/console/webhooks"))  # again: listed, the secret gone for good
        until(console, lambda b: b.find_elements(By.ID, "webhook-list"), "the list")
        assert console.find_elements(By.ID, "webhook-secret") == []
        assert secret not in console.page_source

        user = LineUser(Http(server.base), server.fake_line, time.time)
        user.follow()
        user.say("相談する")
        got = eventually(lambda: [g for g in list(receiver.got) if g.json["type"] == "consultation.requested"],
                         "the consultation request at the receiver")
        assert len(got) == 1
        verify(secret, got[0])
        assert user.user_id not in got[0].body.decode()

        console.get(server.url("/console/webhooks"))  # its answer is listed
        row = until(console, lambda b: b.find_elements(By.CSS_SELECTOR, ".webhook-last tr.ok"), "the last answer")[0]
        assert got[0].id in row.text and "相談の申し込み" in row.text
        console.find_element(By.CSS_SELECTOR, ".delete-webhook button").click()
        until(console, lambda b: b.find_elements(By.ID, "webhooks-none"), "the empty list after deleting")
