"""Consultation in a Slack DM: the result's 「相談する」 button, the confirmation (with the booking
page as a link button when one is set), and the handoff silence for free text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot.app import build_services, build_worker, create_app
from bot.slack.blocks import CONSULT_URL_ACTION
from bot.worker import WorkerThread
from tests.bot.slack.conftest import ALICE, SlackEnv, slack_config
from tests.bot.slack.test_diagnosis import buttons, click, dm_event, start
from tests.conftest import FakeClock
from tests.fakes.slack_api import FakeSlackApi

BOOKING = "https://booking.example.com/crm?from=slack"
HOUR = 3600.0


def finish(env: SlackEnv, answers: str = "ABACADAAAB") -> dict[str, Any]:
    start(env)
    for letter in answers:
        click(env, ALICE, env.dms(ALICE)[-1], letter)
    return env.dms(ALICE)[-1]


def consult_button(message: dict[str, Any]) -> dict[str, Any]:
    [button] = [b for b in buttons(message) if b["value"].startswith("k:")]
    return button


OPS = "C0OPERATOR"


@pytest.fixture
def booking_env(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock) -> Iterator[SlackEnv]:
    yield from slack_env_with(r, redis_url, fake_slack, clock, consult_url=BOOKING)


@pytest.fixture
def operator_env(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock) -> Iterator[SlackEnv]:
    yield from slack_env_with(r, redis_url, fake_slack, clock, operator_slack_channel=OPS)


def slack_env_with(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock,
                   **changes: Any) -> Iterator[SlackEnv]:
    config = slack_config(redis_url, fake_slack, **changes)
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    env = SlackEnv(svc, create_app(services=svc).test_client(), fake_slack, clock, r, worker)
    env.instrument()
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    bolt_log.addHandler(env.errors)
    try:
        yield env
        env.settle()
        fake_slack.assert_contract_ok()
        assert not env.errors.records
    finally:
        bolt_log.removeHandler(env.errors)
        env.executor.shutdown(wait=True)
        worker.close()


def test_the_result_offers_a_consultation_and_the_click_is_confirmed(slack_env: SlackEnv) -> None:
    script = slack_env.svc.script
    result = finish(slack_env)
    button = consult_button(result)
    assert (button["text"]["text"], button["value"]) == (script.text("consult_button"), "k:1")
    slack_env.click(ALICE, result, button["action_id"], button["value"])
    confirmation = slack_env.dms(ALICE)[-1]
    assert confirmation["text"] == script.text("consult_ack")
    assert buttons(confirmation) == []
    conv = slack_env.conv(ALICE)
    assert (conv.consulted, conv.handoff_until) == (1, slack_env.clock() + 24 * HOUR)


def test_free_text_in_the_dm_is_left_to_a_person_until_the_handoff_ends(slack_env: SlackEnv) -> None:
    result = finish(slack_env)
    slack_env.click(ALICE, result, consult_button(result)["action_id"], "k:1")
    count = len(slack_env.dms(ALICE))
    slack_env.event(dm_event(ALICE, "ありがとうございます。連絡お待ちしています"))
    slack_env.clock.advance(23 * HOUR)
    slack_env.event(dm_event(ALICE, "まだでしょうか"))
    assert len(slack_env.dms(ALICE)) == count
    slack_env.event(dm_event(ALICE, "停止"))  # a diagnosis word is still answered
    assert slack_env.dms(ALICE)[-1]["text"] == slack_env.svc.script.text("optin_off")
    slack_env.clock.advance(HOUR)
    slack_env.event(dm_event(ALICE, "まだでしょうか"))
    assert slack_env.dms(ALICE)[-1]["text"] == slack_env.svc.script.text("heard")


def test_with_a_booking_page_the_confirmation_links_to_it(booking_env: SlackEnv) -> None:
    script = booking_env.svc.script
    result = finish(booking_env)
    booking_env.click(ALICE, result, consult_button(result)["action_id"], "k:1")
    confirmation = booking_env.dms(ALICE)[-1]
    assert confirmation["text"] == script.text("consult_ack") + "\n" + script.text("consult_booking")
    [link] = buttons(confirmation)
    assert (link["url"], link["text"]["text"], link["action_id"]) == (
        BOOKING, script.text("consult_book_button"), CONSULT_URL_ACTION)
    count = len(booking_env.dms(ALICE))
    booking_env.click(ALICE, confirmation, CONSULT_URL_ACTION, None)  # Slack tells us of the click: acked
    assert len(booking_env.dms(ALICE)) == count
    assert booking_env.conv(ALICE).consulted == 1


def test_a_request_from_a_dm_briefs_the_operator_once(operator_env: SlackEnv) -> None:
    env = operator_env
    result = finish(env, "ABACADAAAB")  # 6 A: C評価; the D at Q6 is the point to fix
    button = consult_button(result)
    env.click(ALICE, result, button["action_id"], button["value"])
    env.clock.advance(60)
    env.click(ALICE, result, button["action_id"], button["value"])  # asked again: confirmed, not briefed
    assert [m["text"] for m in env.dms(ALICE)[-2:]] == [env.svc.script.text("consult_ack"),
                                                        env.svc.script.text("consult_again")]
    [post] = env.channel_messages(OPS)
    assert post["text"] == "相談のお申し込み：（未取得）（C評価（Aの数 6/10））"
    fields = [f["text"] for b in post["blocks"] if "fields" in b for f in b["fields"]]
    assert fields[:3] == ["*お名前*\n（未取得）", "*チャネル*\nSlack", "*結果*\nC評価（Aの数 6/10）"]
    q6 = env.svc.script.questions[5]
    assert post["blocks"][-2]["text"]["text"] == f"*次に整えたい一点*\nQ6 {q6.topic}（D：{q6.choices['D'].label}）"
