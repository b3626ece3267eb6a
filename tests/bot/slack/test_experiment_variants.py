"""Content experiments on Slack: a diagnosis taken in a DM is assigned its variants when it starts, and the
question Slack receives is the variant's wording (the LINE flow: tests/bot/line/test_experiments.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.app import build_services, build_worker, create_app
from bot.worker import WorkerThread
from conversations import experiments
from conversations.segments import parse_variants
from tests.bot.slack.conftest import CH, START, WS, SlackEnv, slack_config
from tests.conftest import FakeClock
from tests.conversations.experiment_content import Q1_SHORT, content_dir
from tests.fakes.slack_api import FakeSlackApi


@pytest.fixture
def env(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock,
        tmp_path: Path) -> Iterator[SlackEnv]:
    config = slack_config(redis_url, fake_slack, content_dir=content_dir(tmp_path))
    clock.t = START
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    env = SlackEnv(svc, create_app(services=svc).test_client(), fake_slack, clock, r, worker)
    env.instrument()
    logging.getLogger("crmbot.slack.bolt").addHandler(env.errors)
    try:
        yield env
        env.settle()
        fake_slack.assert_contract_ok()
        assert not env.errors.records
    finally:
        logging.getLogger("crmbot.slack.bolt").removeHandler(env.errors)
        env.executor.shutdown(wait=True)
        worker.close()


def test_a_slack_diagnosis_shows_its_variants_wording(env: SlackEnv) -> None:
    _, q1 = env.svc.script.experiments
    plain = json.dumps(env.svc.script.questions[0].text, ensure_ascii=False)[1:-1]  # as escaped in the JSON
    for variant in ("plain", "short"):  # a Slack user of each: the hash of their first diagnosis decides
        user = next(u for u in (f"U0X{i:04d}" for i in range(500))
                    if experiments.pick(q1, experiments.identity("slack", f"{WS}.{u}", 1)) == variant)
        env.command("", user=user, channel=CH, command="/diagnosis")
        env.settle()
        assert parse_variants(env.conv(user).var)["q1"] == variant  # recorded when it starts
        shown = json.dumps(env.dms(user), ensure_ascii=False)
        assert (Q1_SHORT["ja"] in shown) == (variant == "short")
        assert (plain in shown) == (variant == "plain")
