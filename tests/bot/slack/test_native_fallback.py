"""A post carrying Slack's own chart that Slack refuses (``invalid_blocks``: a workspace or client
without the block) goes out in its fallback form, once: the refusal posts nothing, the switch is kept in
the job's state before the fallback goes, a crash after it sends the fallback (not the chart) again, and
a fallback refused as well parks the job instead of looping. Also through the real result post."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.app import build_worker
from bot.worker import Crash, NoFaults, WorkerThread
from conversations import jobs
from conversations.jobs import Job
from conversations.keys import Subject
from tests.bot.slack.conftest import ALICE, BASE, CH, WS, SlackEnv
from tests.bot.test_charts import PNG_MAGIC
from tests.fakes.slack_api import dm_channel_id

TEAM = Subject("slack", f"{WS}.{CH}")
CHART = {"type": "data_visualization", "title": "領域ごとの点数（0〜10点）",
         "chart": {"type": "bar", "axis_config": {"categories": ["データ品質", "ROI"]},
                   "series": [{"name": "2025年度 第4四半期",
                               "data": [{"label": "データ品質", "value": 8.0}, {"label": "ROI", "value": 5.0}]}]}}
TABLE = {"type": "table", "rows": [[{"type": "raw_text", "text": "領域"}, {"type": "raw_text", "text": "点数"}],
                                   [{"type": "raw_text", "text": "データ品質"}, {"type": "raw_text", "text": "8.0"}]]}
SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "データ品質 8.0/10、ROI 5.0/10"}}
PLAIN = {"type": "slack_post", "text": "CRM KPI result", "blocks": [SECTION]}
NATIVE = {**PLAIN, "blocks": [SECTION, CHART, TABLE], "fallback": [PLAIN]}
RADAR = {"type": "slack_chart", "kind": "radar", "name": "kpi-radar-2026-Q1", "title": "本店 2026年1〜3月",
         "labels": ["データ品質", "ROI"], "series": {"2026年1〜3月": [8.0, 5.0]}, "alt": "データ品質 8.0、ROI 5.0"}
TREND_IMAGE = {"type": "slack_chart", "kind": "lines", "name": "kpi-trend", "title": "KPI推移",
               "labels": ["2025年10〜12月", "2026年1〜3月"], "series": {"総合": [7.9, 7.1]}, "alt": "総合: 7.9 → 7.1"}


def stored(env: SlackEnv, job: Job) -> Job:
    """A job as its mailbox holds it now."""
    raw = env.r.hget(jobs.record_keys(job.tag, job.id)[0], job.id)
    assert raw is not None
    return Job.from_json(raw)


def refuse_charts(env: SlackEnv) -> None:
    env.fake.fail("chat.postMessage", "invalid_blocks", block_type="data_visualization", times=99)


def posts(env: SlackEnv, channel: str = CH) -> list[tuple[bool, str | None]]:
    """Every chat.postMessage to ``channel``: (accepted, error), in order."""
    return [(bool(c.response.get("ok")), c.response.get("error"))
            for c in env.fake.calls("chat.postMessage") if c.args["channel"] == channel]


class Recorder(NoFaults):
    """Keeps the job's Slack state at each checkpoint; crashes once after the first that fell back."""

    def __init__(self, crash: bool = False) -> None:
        self.states: list[dict] = []
        self.crash = crash

    def after_checkpoint(self, job: Job) -> None:
        self.states.append(job.slack.to_json())
        if self.crash and job.slack.fell_back:
            self.crash = False
            raise Crash("died right after recording the fallback, before sending it")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def watched(slack_env: SlackEnv, recorder: Recorder) -> Iterator[WorkerThread]:
    config = slack_env.svc.config
    worker = WorkerThread(lambda: build_worker(config, slack_env.svc.script, clock=slack_env.clock,
                                               faults=recorder))
    yield worker
    worker.close()


def test_a_chart_slack_takes_goes_out_as_it_is(slack_env: SlackEnv) -> None:
    slack_env.svc.outbox.enqueue(TEAM, [NATIVE, RADAR])
    slack_env.deliver()
    post, image = slack_env.channel_messages(CH)
    assert post["blocks"] == [SECTION, CHART, TABLE] and "files" in image
    assert posts(slack_env) == [(True, None)] and slack_env.pending() == 0


def test_a_refused_chart_goes_out_in_its_fallback_form_once(slack_env: SlackEnv, watched: WorkerThread,
                                                           recorder: Recorder) -> None:
    refuse_charts(slack_env)
    job = slack_env.svc.outbox.enqueue(TEAM, [NATIVE, RADAR])
    watched.drain()
    # one refusal (nothing posted), one post: the same text without the chart and table, then the radar
    assert posts(slack_env) == [(False, "invalid_blocks"), (True, None)]
    post, image = slack_env.channel_messages(CH)
    assert post["text"] == "CRM KPI result" and post["blocks"] == [SECTION]
    assert post["metadata"]["event_payload"] == {"id": job.id}
    [shared] = slack_env.fake.files(CH)
    assert image["files"][0]["id"] == shared["id"] and shared["data"].startswith(PNG_MAGIC)
    # the switch was recorded before the fallback went, then each step as usual
    assert recorder.states == [{"fallback": 0}, {"fallback": 0, "step": 1}]
    assert slack_env.pending() == 0


def test_a_trend_refused_in_a_dm_goes_as_its_image(slack_env: SlackEnv) -> None:
    refuse_charts(slack_env)
    trend = {"type": "slack_post", "text": "総合: 7.9 → 7.1", "blocks": [SECTION, CHART, TABLE],
             "fallback": [TREND_IMAGE]}
    job = slack_env.svc.outbox.enqueue(Subject("slack", f"{WS}.{ALICE}"), [trend])
    slack_env.deliver()
    dm = dm_channel_id(ALICE)
    assert posts(slack_env, dm) == [(False, "invalid_blocks")]  # no post went: the image instead
    [shared] = slack_env.fake.files(ALICE)
    assert shared["name"] == f"kpi-trend-{job.id[:8]}.png" and shared["alt_txt"] == TREND_IMAGE["alt"]
    assert len(slack_env.dms(ALICE)) == 1 and slack_env.pending() == 0


def test_a_crash_after_falling_back_sends_the_fallback_not_the_chart(slack_env: SlackEnv) -> None:
    refuse_charts(slack_env)
    recorder = Recorder(crash=True)
    config = slack_env.svc.config
    dying = WorkerThread(lambda: build_worker(config, slack_env.svc.script, clock=slack_env.clock, faults=recorder))
    try:
        slack_env.svc.outbox.enqueue(TEAM, [NATIVE, RADAR])
        dying.drain()
        assert posts(slack_env) == [(False, "invalid_blocks")] and slack_env.pending() == 1
        slack_env.clock.advance(config.outbox_lease + 1)
        assert slack_env.deliver() == 1  # the recovery: the same code, from the recorded state
    finally:
        dying.close()
    # the chart was not tried again: the recovery looked for the fallback post (not there), then posted it
    assert posts(slack_env) == [(False, "invalid_blocks"), (True, None)]
    assert [m["text"] for m in slack_env.channel_messages(CH) if "files" not in m] == ["CRM KPI result"]
    assert len(slack_env.fake.files(CH)) == 1 and slack_env.pending() == 0


def test_a_refused_fallback_parks_the_job_instead_of_looping(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", "invalid_blocks", times=99)  # every message refused
    job = slack_env.svc.outbox.enqueue(TEAM, [NATIVE, RADAR])
    slack_env.deliver()
    slack_env.clock.advance(600)
    slack_env.deliver()
    assert posts(slack_env) == [(False, "invalid_blocks")] * 2  # the chart once, its fallback once
    assert slack_env.channel_messages(CH) == [] and slack_env.fake.files(CH) == []
    [parked] = slack_env.svc.outbox.parked()
    assert (parked.id, parked.reason, parked.attempts) == (job.id, "slack: invalid_blocks", 1)
    assert stored(slack_env, job).slack.fallback == 0  # it fell back, and the fallback was refused too


def test_a_post_without_a_fallback_refused_is_parked_as_before(slack_env: SlackEnv) -> None:
    refuse_charts(slack_env)
    plain_with_chart = {**PLAIN, "blocks": [SECTION, CHART]}
    job = slack_env.svc.outbox.enqueue(TEAM, [plain_with_chart])
    slack_env.deliver()
    assert posts(slack_env) == [(False, "invalid_blocks")]
    [parked] = slack_env.svc.outbox.parked()
    assert (parked.id, parked.reason) == (job.id, "slack: invalid_blocks")
    assert not stored(slack_env, job).slack.fell_back


def test_the_result_of_a_report_falls_back_without_its_chart_and_table(slack_env: SlackEnv) -> None:
    slack_env.setup_team()
    refuse_charts(slack_env)
    slack_env.report(BASE)
    [result] = slack_env.team_posts(CH)
    kinds = [b["type"] for b in result["blocks"]]
    assert "data_visualization" not in kinds and "table" not in kinds and "section" in kinds
    assert [ok for ok, _ in posts(slack_env)].count(True) == 2  # the setup's announcement and the result, once
    assert [error for _, error in posts(slack_env)].count("invalid_blocks") == 1
    assert len(slack_env.fake.files(CH)) == 1  # its radar, as always
    assert slack_env.pending() == 0
