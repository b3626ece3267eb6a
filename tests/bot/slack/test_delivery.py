"""Slack posts go through the outbox: rate limits wait, lost outcomes never double-post, dead channels park."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from conversations.keys import TeamRef
from tests.bot.slack.conftest import ALICE, CH, CH2, TEAM_NAME, WS, SlackEnv, txt
from tests.fakes.slack_api import dm_channel_id
from tests.fakes.slack_signing import slash_command_body

REF = TeamRef(WS, CH)
SECOND = "二号店"
REF2 = TeamRef(WS, CH2)
ANNOUNCEMENT = txt("setup_announce", user=ALICE, name=SECOND)


def announce(env: SlackEnv) -> None:
    """A channel post through the outbox: the announcement of a second team registered in CH2.

    UNTIL-WORKER: these tests used a KPI report's result post (team_env.report(BASE), checked in CH).
    That post is now committed as a job in the team's mailbox, which this outbox does not deliver;
    once the delivery worker lands, point them back at the report's post (and the worker's sweep).
    """
    env.setup_team(SECOND, channel=CH2)


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    slack_env.fake.reset()  # count only what the test itself causes
    return slack_env


def posts(env: SlackEnv) -> list[tuple[int, Any]]:
    return [(c.status, c.response.get("error")) for c in env.fake.calls("chat.postMessage")]


def lose_first_ack(env: SlackEnv) -> list[str]:
    """Slack accepts the post, then the worker loses Redis before recording it (outcome unknown)."""
    real_ack = env.svc.outbox._ack
    lost: list[str] = []

    def flaky(subject, message_id):  # type: ignore[no-untyped-def]
        if not lost:
            lost.append(message_id)
            raise redis.ConnectionError("connection lost after Slack accepted the post")
        real_ack(subject, message_id)

    env.svc.outbox._ack = flaky  # type: ignore[method-assign]
    return lost


def test_429_waits_for_retry_after_then_posts_once(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", status=429, headers={"Retry-After": "30"})
    slack_env.setup_team()
    assert slack_env.channel_messages(CH) == []
    assert slack_env.pending() == 1
    assert slack_env.svc.outbox.sweep() == 0  # not due yet
    slack_env.clock.advance(29)
    assert slack_env.svc.outbox.sweep() == 0  # Retry-After, not the 2 s first backoff
    slack_env.clock.advance(2)
    assert slack_env.svc.outbox.sweep() == 1
    assert [m["text"] for m in slack_env.channel_messages(CH)] == [txt("setup_announce", user=ALICE, name=TEAM_NAME)]
    assert posts(slack_env) == [(429, "ratelimited"), (200, None)]
    assert slack_env.pending() == 0
    slack_env.clock.advance(3600)
    assert slack_env.svc.outbox.sweep() == 0
    assert len(slack_env.channel_messages(CH)) == 1


def test_a_server_error_is_retried_with_backoff(team_env: SlackEnv) -> None:
    team_env.fake.fail("chat.postMessage", status=503)
    announce(team_env)
    assert team_env.teams.get(REF2) is not None  # stored regardless
    assert team_env.channel_messages(CH2) == []
    team_env.clock.advance(2)
    assert team_env.svc.outbox.sweep() == 1
    [message] = team_env.channel_messages(CH2)
    assert message["text"] == ANNOUNCEMENT
    assert posts(team_env) == [(503, "internal_error"), (200, None)]


def test_recovery_after_a_lost_outcome_does_not_post_twice(team_env: SlackEnv) -> None:
    lost = lose_first_ack(team_env)
    announce(team_env)
    assert len(lost) == 1
    assert len(team_env.channel_messages(CH2)) == 1 and team_env.pending() == 1
    team_env.clock.advance(team_env.svc.config.outbox_lease - 1)
    assert team_env.svc.outbox.sweep() == 0
    team_env.clock.advance(2)
    assert team_env.svc.outbox.sweep() == 1
    assert len(team_env.channel_messages(CH2)) == 1  # found by its metadata, not posted again
    assert posts(team_env) == [(200, None)]
    [history] = team_env.fake.calls("conversations.history")
    assert history.args["channel"] == CH2 and history.args["include_all_metadata"] in (True, "1", "true")
    assert team_env.channel_messages(CH2)[0]["metadata"]["event_payload"] == {"id": lost[0]}
    assert team_env.pending() == 0


def test_recovery_of_a_dm_after_a_lost_outcome_does_not_post_twice(slack_env: SlackEnv) -> None:
    lose_first_ack(slack_env)
    slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH))
    assert len(slack_env.dms(ALICE)) == 1 and slack_env.pending() == 1
    slack_env.clock.advance(slack_env.svc.config.outbox_lease + 1)
    assert slack_env.svc.outbox.sweep() == 1
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10"]
    assert [c.args["channel"] for c in slack_env.fake.calls("conversations.history")] == [dm_channel_id(ALICE)]
    assert slack_env.pending() == 0


def test_a_post_never_attempted_is_sent_once_after_the_lease(team_env: SlackEnv) -> None:
    team_env.svc.outbox.submit = lambda write: None  # the process dies right after queuing the post
    announce(team_env)
    assert team_env.channel_messages(CH2) == [] and team_env.pending() == 1
    team_env.clock.advance(team_env.svc.config.outbox_lease + 1)
    assert team_env.svc.outbox.sweep() == 1
    assert len(team_env.channel_messages(CH2)) == 1
    assert [c.method for c in team_env.fake.calls() if c.method != "auth.test"][-2:] == [
        "conversations.history", "chat.postMessage"
    ]


def test_a_rate_limited_dm_is_retried(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", status=429, headers={"Retry-After": "5"})
    slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH))
    assert slack_env.dms(ALICE) == []
    slack_env.clock.advance(6)
    assert slack_env.svc.outbox.sweep() == 1
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10"]


@pytest.mark.parametrize("error", ["is_archived", "not_in_channel"])
def test_a_permanent_error_parks_the_message(team_env: SlackEnv, error: str) -> None:
    team_env.fake.fail("chat.postMessage", error=error)  # the channel is archived, or the bot was removed
    announce(team_env)
    assert team_env.teams.get(REF2) is not None
    [parked] = team_env.svc.outbox.parked()
    assert (parked["reason"], parked["attempts"]) == (f"slack: {error}", 1)
    assert team_env.pending() == 0
    assert posts(team_env) == [(200, error)]
    team_env.clock.advance(3600)
    assert team_env.svc.outbox.sweep() == 0
    assert len(team_env.fake.calls("chat.postMessage")) == 1  # not retried

    team_env.fake.reset()  # the operator fixes the channel and puts the message back in line
    assert team_env.svc.outbox.requeue(parked["id"])
    assert team_env.svc.outbox.sweep() == 1
    [message] = team_env.channel_messages(CH2)
    assert message["text"] == ANNOUNCEMENT
    assert team_env.svc.outbox.parked() == []
