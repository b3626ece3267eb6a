"""A job of several steps (a post, then a chart or a file): each step goes out once, in order, through
failures and a worker that dies between them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.app import build_worker
from bot.worker import Crash, NoFaults, WorkerThread
from conversations.jobs import Job
from conversations.keys import Subject
from tests.bot.slack.conftest import CH, WS, SlackEnv
from tests.bot.test_charts import PNG_MAGIC, png_size

TEAM = Subject("slack", f"{WS}.{CH}")
POST = {"type": "slack_post", "text": "CRM KPI result", "blocks": [{"type": "section",
                                                                    "text": {"type": "mrkdwn", "text": "result"}}]}
CHART = {"type": "slack_chart", "kind": "radar", "name": "kpi-radar-2026-Q1", "title": "本店 2026年1〜3月",
         "labels": ["ユーザー参加度", "データ品質", "顧客満足度", "ROI", "プロセス効率"],
         "series": {"2026年1〜3月": [7.5, 8.0, 10.0, 5.0, 5.0]}, "alt": "ユーザー参加度 7.5、データ品質 8.0"}


def queue(env: SlackEnv, *outputs: dict) -> Job:
    return env.svc.outbox.enqueue(TEAM, list(outputs))


def test_a_post_and_its_chart_go_out_in_order(slack_env: SlackEnv) -> None:
    job = queue(slack_env, POST, CHART)
    slack_env.deliver()
    first, second = slack_env.channel_messages(CH)
    assert first["text"] == "CRM KPI result" and "files" not in first
    [shared] = slack_env.fake.files(CH)
    assert second["files"][0]["id"] == shared["id"]
    assert shared["name"] == f"kpi-radar-2026-Q1-{job.id[:8]}.png" and shared["mimetype"] == "image/png"
    assert shared["title"] == "本店 2026年1〜3月" and shared["alt_txt"] == CHART["alt"]
    assert shared["data"].startswith(PNG_MAGIC) and png_size(shared["data"])[0] > 500
    assert slack_env.pending() == 0


def test_a_failed_upload_is_retried_without_posting_again(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("files.completeUploadExternal", status=500)
    queue(slack_env, POST, CHART)
    slack_env.deliver()
    assert [m["text"] for m in slack_env.channel_messages(CH)] == ["CRM KPI result"]
    assert slack_env.fake.files(CH) == [] and slack_env.pending() == 1
    slack_env.clock.advance(3)
    assert slack_env.deliver() == 1
    assert len(slack_env.fake.calls("chat.postMessage")) == 1  # the post was step one, done before
    assert len(slack_env.fake.files(CH)) == 1
    # the 500 left the upload's outcome unknown: the retry looked for the file by its name first
    assert [c.args["channel"] for c in slack_env.fake.calls("conversations.history")] == [CH]


class DieAfterDelivering(NoFaults):
    def __init__(self) -> None:
        self.died = False

    def after_deliver(self, job: Job, outcome: object) -> None:
        if not self.died:
            self.died = True
            raise Crash("died after Slack accepted both steps, before recording")


@pytest.fixture
def dying(slack_env: SlackEnv) -> Iterator[WorkerThread]:
    config = slack_env.svc.config
    worker = WorkerThread(lambda: build_worker(config, slack_env.svc.script, clock=slack_env.clock,
                                               faults=DieAfterDelivering()))
    yield worker
    worker.close()


def test_a_recovery_finds_the_shared_file_by_its_name(slack_env: SlackEnv, dying: WorkerThread) -> None:
    queue(slack_env, POST, CHART)
    dying.drain()
    assert len(slack_env.channel_messages(CH)) == 2 and slack_env.pending() == 1
    slack_env.clock.advance(slack_env.svc.config.outbox_lease + 1)
    assert slack_env.deliver() == 1
    assert len(slack_env.channel_messages(CH)) == 2  # neither the post nor the chart again
    assert len(slack_env.fake.calls("files.getUploadURLExternal")) == 1
    assert slack_env.pending() == 0


def test_a_csv_file_in_a_dm(slack_env: SlackEnv) -> None:
    content = "\ufeff四半期,総合\r\n2026-Q1,7.1\r\n"
    slack_env.svc.outbox.enqueue(Subject("slack", f"{WS}.U0ALICE"),
                                 [{"type": "slack_file", "name": "crm-kpi", "ext": "csv", "content": content,
                                   "title": "KPI", "comment": "CSVです"}])
    slack_env.deliver()
    [shared] = slack_env.fake.files("U0ALICE")
    assert shared["data"] == content.encode("utf-8") and shared["data"].startswith(b"\xef\xbb\xbf")
    assert shared["name"].startswith("crm-kpi-") and shared["name"].endswith(".csv")
    assert [m["text"] for m in slack_env.dms("U0ALICE")] == ["CSVです"]
