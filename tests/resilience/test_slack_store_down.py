"""Redis stopped (a real redis-server of the test's own): every Slack command, button and modal
submission is told "temporarily unavailable" at once, in the HTTP response itself where Slack allows
one (the worker, which sends every other message, cannot be reached: its jobs are in Redis), and nothing
else happens; events get 503 (Slack retries them). With Redis back, everything works again."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build_services, build_worker, create_app
from bot.slack import blocks as slack_blocks
from bot.slack.unavailable import answer
from bot.worker import WorkerThread
from tests.bot.slack.conftest import (
    ALICE,
    CH,
    SlackEnv,
    TrackingExecutor,
    form_values,
    in_view,
    slack_config,
    txt,
)
from tests.bot.slack.test_oauth import HTTPS, W1, OAuthEnv, oauth_config
from tests.conftest import FakeClock
from tests.fakes.slack_api import FakeSlackApi, check_view
from tests.fakes.slack_signing import (
    block_actions_payload,
    event_body,
    interaction_body,
    slash_command_body,
    view_submission_payload,
)
from tests.redis_server import RedisServer

UNAVAILABLE = "一時的に利用できません。少し時間をおいてもう一度お試しください。"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def _env(cls: type[SlackEnv], server: RedisServer, fake: FakeSlackApi, clock: FakeClock, config: Any) -> SlackEnv:
    clock.t = 1_775_001_600.0
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    env = cls(svc, create_app(services=svc).test_client(), fake, clock, svc.redis, worker, TrackingExecutor())
    env.instrument()
    return env


def _json(res: Any) -> dict[str, Any]:
    assert res.status_code == 200, (res.status_code, res.get_data(as_text=True))
    assert res.headers["Content-Type"].startswith("application/json")
    found: dict[str, Any] = json.loads(res.get_data(as_text=True))
    return found


def test_while_redis_is_down_commands_buttons_and_modals_are_told_so(
    own_redis: RedisServer, fake_slack: FakeSlackApi, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    env = _env(SlackEnv, own_redis, fake_slack, clock, slack_config(own_redis.url, fake_slack))
    try:
        env.setup_team()
        view = env.open_report()
        env.command("", command="/diagnosis")
        question = env.dms(ALICE)[-1]
        button = next(e for b in question["blocks"] if b["type"] == "actions" for e in b["elements"]
                      if e["value"].endswith(":A"))
        before = {m: len(fake_slack.calls(m)) for m in ("views.open", "chat.postMessage", "chat.postEphemeral")}

        own_redis.stop()  # Redis goes away
        caplog.set_level(logging.ERROR, logger="bot.slack.unavailable")
        for command, text in (("/kpi", ""), ("/kpi", "history"), ("/diagnosis", "")):
            answered = _json(env.post(slash_command_body(command, text, ALICE, CH)))
            assert answered == {"response_type": "ephemeral", "text": UNAVAILABLE}
        # a modal submission: the modal stays open, saying so under its first input
        values = in_view(view, form_values(env.catalog, {"active_members": "80"}))
        res = env.post(interaction_body(view_submission_payload(ALICE, view, values)))
        assert _json(res) == {"response_action": "errors", "errors": {"quarter": UNAVAILABLE}}
        # a button: its response_url carries the answer (the request's own body is not shown by Slack)
        url = fake_slack.new_response_url()
        res = env.post(interaction_body(block_actions_payload(ALICE, button["action_id"], button["value"],
                                                             message=question, response_url=url)))
        assert res.status_code == 200 and res.get_data(as_text=True) == ""
        assert fake_slack.responses(url) == [{"text": UNAVAILABLE, "response_type": "ephemeral",
                                              "replace_original": False}]
        # the booking link needs nothing from Redis: acknowledged, no message
        link = fake_slack.new_response_url()
        res = env.post(interaction_body(block_actions_payload(ALICE, slack_blocks.CONSULT_URL_ACTION, None,
                                                              message=question,
                                                             response_url=link)))
        assert res.status_code == 200 and fake_slack.responses(link) == []
        # an event: 503, and Slack delivers it again later
        res = env.post(event_body({"type": "message", "channel": "D0ALICE", "user": ALICE, "text": "A",
                                   "ts": "1.2", "channel_type": "im"}))
        assert res.status_code == 503
        for future in env.executor.running():  # (the booking link's ack, if still running)
            future.result(timeout=10)
        assert {m: len(fake_slack.calls(m)) for m in before} == before  # nothing else reached Slack
        assert sum("answered \"temporarily unavailable\"" in r.getMessage() for r in caplog.records) == 5

        own_redis.start()  # back (empty: it kept nothing), and everything works again
        assert env.command("help").get_data(as_text=True) == ""
        assert env.ephemerals(CH, ALICE)[-1] == txt("help")
        fake_slack.assert_contract_ok()  # the answers passed Slack's limits and slack_sdk's models
    finally:
        env.executor.shutdown(wait=True)
        env.worker.close()  # type: ignore[union-attr]


def test_with_oauth_the_installation_lookup_answers_the_same_way(
    own_redis: RedisServer, fake_slack: FakeSlackApi, clock: FakeClock
) -> None:
    """Many workspaces: the workspace's installation (its token) is in Redis, so the request is answered
    before authorization; the button's answer through its response_url needs no token either."""
    env = _env(OAuthEnv, own_redis, fake_slack, clock, oauth_config(own_redis.url, fake_slack))
    assert isinstance(env, OAuthEnv)
    try:
        env.install(W1)
        own_redis.stop()
        answered = _json(env.post(slash_command_body("/kpi", "", ALICE, CH, team_id=W1)))
        assert answered == {"response_type": "ephemeral", "text": UNAVAILABLE}
        url = fake_slack.new_response_url()
        payload = block_actions_payload(ALICE, f"{slack_blocks.DIAGNOSIS_ACTION}:0", "a:1:0:A", channel_id="D0ALICE",
                                        team_id=W1, response_url=url)
        res = env.post(interaction_body(payload))
        assert res.status_code == 200 and fake_slack.responses(url)[0]["text"] == UNAVAILABLE
        res = env.http.get("/slack/install", base_url=HTTPS)
        page = res.get_data(as_text=True)
        assert res.status_code == 503 and UNAVAILABLE in page and "Temporarily unavailable" in page
        res = env.http.get("/slack/oauth_redirect?code=x&state=" + "s" * 43, base_url=HTTPS)
        assert res.status_code in (400, 503)  # no state cookie: refused before Redis; never a 500
        env.http.set_cookie("slack-app-oauth-state", "s" * 43, domain="crmbot.example.com")
        res = env.http.get("/slack/oauth_redirect?code=x&state=" + "s" * 43, base_url=HTTPS)
        assert res.status_code == 503 and "Temporarily unavailable" in res.get_data(as_text=True)
        fake_slack.assert_contract_ok()
    finally:
        env.executor.shutdown(wait=True)
        env.worker.close()  # type: ignore[union-attr]


def test_a_modal_without_inputs_gets_a_notice_pushed_and_anything_else_503() -> None:
    pushed = answer({"type": "view_submission", "view": {"blocks": [{"type": "section"}]}}, "en")
    assert pushed.status == 200
    body = json.loads(pushed.body)
    assert body["response_action"] == "push" and check_view(body["view"]) == []
    assert body["view"]["blocks"][0]["text"]["text"] == "Temporarily unavailable, please try again in a moment."
    assert answer({"type": "view_closed"}, "ja").status == 503
    assert answer("not a body", "ja").status == 503
