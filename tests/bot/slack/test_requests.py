"""What reaches the app at all: signatures, timestamps, configuration, and Slack's retries."""

from __future__ import annotations

import time

import pytest
import redis

from bot.app import build_services, create_app
from bot.config import Config
from conversations import keys
from tests.bot.slack.conftest import ALICE, BOB, CH, SECRET, TEAM_NAME, SlackEnv, slack_config
from tests.conftest import FakeClock
from tests.fakes.slack_api import FakeSlackApi, dm_channel_id
from tests.fakes.slack_signing import event_body, signed_headers, slash_command_body, url_verification_body


def api_calls(env: SlackEnv) -> list[str]:
    return [c.method for c in env.fake.calls() if c.method != "auth.test"]


def dm_answer(user: str, text: str) -> dict:
    return {"type": "message", "channel": dm_channel_id(user), "user": user, "text": text,
            "ts": "1767225600.000300", "event_ts": "1767225600.000300", "channel_type": "im"}


def home_opened(user: str) -> dict:
    return {"type": "app_home_opened", "user": user, "channel": dm_channel_id(user), "tab": "home",
            "event_ts": "1767225600.000400"}


@pytest.mark.parametrize(
    "body",
    [
        slash_command_body("/kpi", f"setup {TEAM_NAME}", ALICE, CH),
        event_body(dm_answer(ALICE, "診断"), event_id="Ev0BADSIG"),
    ],
    ids=["command", "event"],
)
def test_a_bad_signature_is_refused_and_nothing_happens(slack_env: SlackEnv, body: bytes) -> None:
    res = slack_env.post(body, secret="not-the-signing-secret")
    assert res.status_code == 401
    slack_env.settle()
    assert slack_env.r.keys("*") == []  # not even the event's retry mark
    assert api_calls(slack_env) == []


def test_a_tampered_body_is_refused(slack_env: SlackEnv) -> None:
    signed = slash_command_body("/kpi", "setup 本店", ALICE, CH)
    sent = signed.replace(b"setup", b"setuq")
    headers = signed_headers(SECRET, signed, int(time.time()))
    assert slack_env.http.post("/slack/events", data=sent, headers=headers).status_code == 401
    assert slack_env.http.post("/slack/events", data=signed, headers={"Content-Type": headers["Content-Type"]}
                               ).status_code == 401  # no signature at all
    slack_env.settle()
    assert slack_env.r.keys("*") == []
    assert api_calls(slack_env) == []


def test_a_stale_timestamp_is_refused_even_when_correctly_signed(slack_env: SlackEnv) -> None:
    six_minutes_ago = int(time.time()) - 360
    for body in (slash_command_body("/kpi", f"setup {TEAM_NAME}", ALICE, CH), event_body(home_opened(ALICE))):
        res = slack_env.post(body, timestamp=six_minutes_ago)
        assert res.status_code == 401
    slack_env.settle()
    assert slack_env.r.keys("*") == []
    assert api_calls(slack_env) == []


@pytest.mark.parametrize(
    "changes",
    [{}, {"slack_bot_token": None}, {"slack_signing_secret": None}],
    ids=["neither", "no-token", "no-secret"],
)
def test_without_slack_secrets_the_endpoint_answers_503(
    redis_url: str, r: redis.Redis, fake_slack: FakeSlackApi, changes: dict
) -> None:
    config = slack_config(redis_url, fake_slack).with_(**changes) if changes else Config(redis_url=redis_url)
    svc = build_services(config, clock=FakeClock())
    try:
        assert svc.slack is None
        http = create_app(services=svc).test_client()
        body = slash_command_body("/kpi", f"setup {TEAM_NAME}", ALICE, CH)
        res = http.post("/slack/events", data=body, headers=signed_headers(SECRET, body, int(time.time())))
        assert res.status_code == 503
        assert r.keys("*") == []
        assert fake_slack.calls() == []
    finally:
        svc.redis.close()


def test_url_verification_handshake(slack_env: SlackEnv) -> None:
    res = slack_env.post(url_verification_body("challenge-123"))
    assert res.status_code == 200
    assert "challenge-123" in res.get_data(as_text=True)


# ---- Slack retries (same event_id, X-Slack-Retry-Num) ---------------------------------------------


def test_a_retried_dm_answer_is_counted_once(slack_env: SlackEnv) -> None:
    slack_env.event(dm_answer(ALICE, "診断"))
    body = event_body(dm_answer(ALICE, "a"), event_id="Ev0ANSWER1")
    slack_env.ok(body)
    slack_env.ok(body, retry_num=1)
    slack_env.ok(body, retry_num=2)
    conv = slack_env.conv(ALICE)
    assert (conv.q, conv.answers) == (1, "A")
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10", "Q2/10"]
    assert slack_env.r.exists(keys.slack_seen("Ev0ANSWER1"))


def test_a_retried_app_home_opened_is_published_once(slack_env: SlackEnv) -> None:
    body = event_body(home_opened(ALICE), event_id="Ev0HOME1")
    slack_env.ok(body)
    slack_env.ok(body, retry_num=1)
    assert [c.args["user_id"] for c in slack_env.fake.calls("views.publish")] == [ALICE]
    slack_env.event(home_opened(BOB), event_id="Ev0HOME2")  # another event is handled as usual
    assert [c.args["user_id"] for c in slack_env.fake.calls("views.publish")] == [ALICE, BOB]
