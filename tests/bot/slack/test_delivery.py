"""Slack posts go through the outbox: rate limits wait, lost outcomes never double-post, dead channels park."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bot.app import build_worker
from bot.worker import Crash, NoFaults, Outcome, WorkerThread
from conversations.jobs import Job
from conversations.keys import TeamRef
from tests.bot.slack.conftest import ALICE, BASE, BASE_STORED, CH, P_Q1_2026, Q1_2026, TEAM_NAME, WS, SlackEnv, txt
from tests.fakes.slack_api import dm_channel_id
from tests.fakes.slack_signing import slash_command_body

REF = TeamRef(WS, CH)


@pytest.fixture
def team_env(slack_env: SlackEnv) -> SlackEnv:
    slack_env.setup_team()
    slack_env.fake.reset()  # count only what the test itself causes
    return slack_env


def posts(env: SlackEnv) -> list[tuple[int, Any]]:
    return [(c.status, c.response.get("error")) for c in env.fake.calls("chat.postMessage")]


def messages(env: SlackEnv) -> list[dict[str, Any]]:
    """The channel's messages but the shared files (a result post is followed by its radar chart)."""
    return [m for m in env.channel_messages(CH) if "files" not in m]


class DieOnce(NoFaults):
    """The worker dies at one point of its first attempt (the documented fault hook)."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.jobs: list[str] = []

    def before_deliver(self, job: Job) -> None:
        if self.point == "before" and not self.jobs:
            self.jobs.append(job.id)
            raise Crash("died before sending")

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        if self.point == "after" and not self.jobs:
            self.jobs.append(job.id)
            raise Crash("died after Slack accepted, before recording")


@pytest.fixture
def dying(slack_env: SlackEnv) -> Iterator[tuple[WorkerThread, DieOnce]]:
    faults = DieOnce("after")
    config = slack_env.svc.config
    worker = WorkerThread(lambda: build_worker(config, slack_env.svc.script, clock=slack_env.clock, faults=faults))
    yield worker, faults
    worker.close()


def queue_then_die(env: SlackEnv, dying: tuple[WorkerThread, DieOnce], point: str, act: Callable[[], Any]) -> str:
    """Run ``act`` (which queues one message) with the dying worker delivering, then return its job id."""
    worker, faults = dying
    faults.point = point
    saved, env.worker = env.worker, worker
    try:
        act()
    finally:
        env.worker = saved
    assert len(faults.jobs) == 1
    return faults.jobs[0]


def test_429_waits_for_retry_after_then_posts_once(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", status=429, headers={"Retry-After": "30"})
    slack_env.setup_team()
    assert slack_env.channel_messages(CH) == []
    assert slack_env.pending() == 1
    assert slack_env.deliver() == 0  # not due yet
    slack_env.clock.advance(29)
    assert slack_env.deliver() == 0  # Retry-After, not the 2 s first backoff
    slack_env.clock.advance(2)
    assert slack_env.deliver() == 1
    assert [m["text"] for m in slack_env.channel_messages(CH)] == [txt("setup_announce", user=ALICE, name=TEAM_NAME)]
    assert posts(slack_env) == [(429, "ratelimited"), (200, None)]
    assert slack_env.pending() == 0
    slack_env.clock.advance(3600)
    assert slack_env.deliver() == 0
    assert len(slack_env.channel_messages(CH)) == 1


def test_a_server_error_is_retried_with_backoff(team_env: SlackEnv) -> None:
    team_env.fake.fail("chat.postMessage", status=503)
    team_env.report(BASE)
    assert dict(team_env.teams.report(REF, Q1_2026).values) == BASE_STORED  # stored regardless
    assert team_env.channel_messages(CH) == []
    team_env.clock.advance(2)
    assert team_env.deliver() == 1
    [message] = messages(team_env)
    assert message["text"].startswith(f"CRM KPI {P_Q1_2026}")
    assert len(team_env.fake.files(CH)) == 1  # its chart followed
    assert posts(team_env) == [(503, "internal_error"), (200, None)]
    assert [c.args["channel"] for c in team_env.fake.calls("conversations.history")] == [CH]  # checked first


def test_recovery_after_a_lost_outcome_does_not_post_twice(team_env: SlackEnv, dying) -> None:
    lost = queue_then_die(team_env, dying, "after", lambda: team_env.report(BASE))
    assert len(messages(team_env)) == 1 and len(team_env.fake.files(CH)) == 1 and team_env.pending() == 1
    team_env.clock.advance(team_env.svc.config.outbox_lease - 1)
    assert team_env.deliver() == 0
    team_env.clock.advance(2)
    assert team_env.deliver() == 1
    # the post was checkpointed as done; the chart, the step in flight, was found by its name
    assert len(messages(team_env)) == 1 and len(team_env.fake.files(CH)) == 1
    assert posts(team_env) == [(200, None)]
    [history] = team_env.fake.calls("conversations.history")  # the chart looked for, the post not again
    assert history.args["channel"] == CH
    assert team_env.channel_messages(CH)[0]["metadata"]["event_payload"] == {"id": lost}
    assert team_env.pending() == 0


def test_recovery_of_a_dm_after_a_lost_outcome_does_not_post_twice(slack_env: SlackEnv, dying) -> None:
    queue_then_die(slack_env, dying, "after", lambda: slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH)))
    assert len(slack_env.dms(ALICE)) == 1 and slack_env.pending() == 1
    slack_env.clock.advance(slack_env.svc.config.outbox_lease + 1)
    assert slack_env.deliver() == 1
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10"]
    assert [c.args["channel"] for c in slack_env.fake.calls("conversations.history")] == [dm_channel_id(ALICE)]
    assert slack_env.pending() == 0


def test_a_post_never_attempted_is_sent_once_after_the_lease(team_env: SlackEnv, dying) -> None:
    queue_then_die(team_env, dying, "before", lambda: team_env.report(BASE))
    assert team_env.channel_messages(CH) == [] and team_env.pending() == 1
    team_env.clock.advance(team_env.svc.config.outbox_lease + 1)
    assert team_env.deliver() == 1
    assert len(messages(team_env)) == 1 and len(team_env.fake.files(CH)) == 1
    assert [c.method for c in team_env.fake.calls() if c.method != "auth.test"][-5:] == [
        "conversations.history", "chat.postMessage",
        "files.getUploadURLExternal", "upload", "files.completeUploadExternal",  # its chart, not in doubt
    ]


def test_a_rate_limited_dm_is_retried(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", status=429, headers={"Retry-After": "5"})
    slack_env.ok(slash_command_body("/diagnosis", "", ALICE, CH))
    assert slack_env.dms(ALICE) == []
    slack_env.clock.advance(6)
    assert slack_env.deliver() == 1
    assert [m["text"][:5] for m in slack_env.dms(ALICE)] == ["Q1/10"]


@pytest.mark.parametrize(("break_channel", "error"), [("archive", "is_archived"), ("remove_bot", "not_in_channel")])
def test_a_permanent_error_parks_the_message(team_env: SlackEnv, break_channel: str, error: str) -> None:
    getattr(team_env.fake, break_channel)(CH)
    team_env.report(BASE)
    assert dict(team_env.teams.report(REF, Q1_2026).values) == BASE_STORED
    [parked] = team_env.svc.outbox.parked()
    assert (parked.reason, parked.attempts) == (f"slack: {error}", 1)
    assert team_env.pending() == 0
    assert posts(team_env) == [(200, error)]
    team_env.clock.advance(3600)
    assert team_env.deliver() == 0
    assert len(team_env.fake.calls("chat.postMessage")) == 1  # not retried

    team_env.fake.reset()  # the operator fixes the channel and puts the message back in line
    assert team_env.svc.outbox.requeue(parked.id)
    assert team_env.deliver() == 1
    [message] = messages(team_env)
    assert message["text"].startswith(f"CRM KPI {P_Q1_2026}")
    assert team_env.svc.outbox.parked() == []
