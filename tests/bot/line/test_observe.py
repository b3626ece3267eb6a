"""Observe on LINE, end to end (signed webhooks, the worker, the fake LINE API, the real Redis): /metrics
asks for its token; the counters move for a diagnosis, its deliveries, a 429 and a clock pass; the
queue's gauges and the clock's last pass come from Redis; a failed LINE call is logged with its
x-line-request-id. Each figure is read from /metrics itself, parsed with prometheus_client's parser."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build_reminders, build_services, create_app
from bot.clock import DONE, Clock, reminder_steps
from bot.line.quota import quota_reader
from conversations import keys
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import TOKEN
from tests.bot.line.test_webhook import take
from tests.bot.scrape import moved, scrape, value
from tests.fakes.line_api import PROFILE, PUSH, QUOTA, REPLY, FakeLineApi

METRICS_TOKEN = "metrics-token-for-tests-0123"


@pytest.fixture
def token_env(r: Any, redis_url: str, fake_line: FakeLineApi, clock: Any) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line, metrics_token=METRICS_TOKEN)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def test_metrics_ask_for_the_token_when_one_is_set(token_env: LineEnv) -> None:
    http = token_env.http
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": METRICS_TOKEN}):
        res = http.get("/metrics", headers=headers)
        assert res.status_code == 401 and b"crmbot_" not in res.data
        assert res.headers["WWW-Authenticate"] == 'Bearer realm="crmbot metrics"'
    assert value(scrape(http, METRICS_TOKEN), "crmbot_redis_up") == 1


def test_without_a_token_the_metrics_are_open(line_env: LineEnv) -> None:
    assert value(scrape(line_env.http), "crmbot_redis_up") == 1


def test_a_diagnosis_moves_the_webhook_delivery_diagnosis_and_consultation_counters(line_env: LineEnv) -> None:
    before = scrape(line_env.http)
    user = line_env.user()
    take(line_env, user, "AAAAAAAACD")  # follow, start, ten answers: twelve signed webhooks; a B result
    consult = user.postback_event("k:1")
    user.send(consult)
    user.send(dict(consult, deliveryContext={"isRedelivery": True}))  # redelivered: a duplicate, not counted
    line_env.settle()
    after = scrape(line_env.http)

    assert moved(before, after, "crmbot_webhook_requests_total", channel="line", status="200") == 14
    assert moved(before, after, "crmbot_webhook_seconds_count", channel="line") == 14
    assert moved(before, after, "crmbot_diagnoses_started_total") == 1
    assert moved(before, after, "crmbot_diagnoses_finished_total", tier="B") == 1
    assert moved(before, after, "crmbot_diagnoses_finished_total", tier="A") == 0
    assert moved(before, after, "crmbot_consultations_requested_total") == 1
    replies = [x for x in line_env.fake.recorded(REPLY) if x.status == 200]
    assert len(replies) == 13  # one reply a step (the duplicate committed nothing)
    assert moved(before, after, "crmbot_deliveries_total", channel="line", outcome="delivered") == len(replies)
    assert moved(before, after, "crmbot_deliveries_total", channel="figures", outcome="delivered") >= 12
    assert moved(before, after, "crmbot_api_responses_total", api="line", status="200") == len(replies)
    assert moved(before, after, "crmbot_api_responses_total", api="line", status="404") == 1  # the profile at follow
    assert value(after, "crmbot_queue_due") == 0 and value(after, "crmbot_queue_parked") == 0


def test_a_429_is_counted_as_an_answer_and_the_delivery_as_a_retry(line_env: LineEnv) -> None:
    line_env.fake.fail(REPLY, 429, headers={"Retry-After": "30"})
    before = scrape(line_env.http)
    user = line_env.user()
    user.follow()
    line_env.settle()
    waiting = scrape(line_env.http)
    assert moved(before, waiting, "crmbot_api_responses_total", api="line", status="429") == 1
    assert moved(before, waiting, "crmbot_deliveries_total", channel="line", outcome="retry") == 1
    assert moved(before, waiting, "crmbot_deliveries_total", channel="line", outcome="delivered") == 0
    assert value(waiting, "crmbot_queue_due") == 1  # the reply, waiting for its retry (Retry-After: 30 s)
    assert value(waiting, "crmbot_queue_overdue") == 0
    line_env.clock.advance(31)
    assert value(scrape(line_env.http), "crmbot_queue_overdue") == 1  # its time has come: a worker's now
    line_env.settle()
    after = scrape(line_env.http)
    assert moved(waiting, after, "crmbot_deliveries_total", channel="line", outcome="delivered") == 1
    assert value(after, "crmbot_queue_due") == 0
    assert line_env.fake.delivered(user.user_id)


def test_a_refused_push_is_parked_counted_and_logged_with_lines_request_id(
        line_env: LineEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    user = line_env.user()
    line_env.fake.fail(PUSH, 400, headers={"x-line-request-id": "req-0f1e2d3c"})
    before = scrape(line_env.http)
    user.send(user.event("follow", redelivery=True, follow={"isUnblocked": False}))  # redelivered: pushed
    line_env.settle()
    after = scrape(line_env.http)
    assert moved(before, after, "crmbot_api_responses_total", api="line", status="400") == 1
    assert moved(before, after, "crmbot_deliveries_total", channel="line", outcome="parked") == 1
    assert value(after, "crmbot_queue_parked") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "bot.line.answers"]
    assert lines == ["line: push: HTTP 400 (x-line-request-id req-0f1e2d3c)"]
    assert [r.levelno for r in caplog.records if r.name == "bot.line.answers"] == [logging.WARNING]
    assert user.user_id not in caplog.text


def test_a_clock_pass_is_recorded_in_redis_and_shown_by_any_web_process(line_env: LineEnv) -> None:
    svc = line_env.svc
    before = scrape(line_env.http)
    assert ("crmbot_reminder_pass_last_success_timestamp_seconds", frozenset()) not in before
    clock = Clock(svc.redis, reminder_steps(build_reminders(svc), svc.clock), now=svc.clock)
    assert clock.run_pass() == DONE
    assert line_env.r.get(keys.CLOCK_LAST_PASS) == repr(line_env.clock()).encode()
    after = scrape(line_env.http)
    assert value(after, "crmbot_reminder_pass_last_success_timestamp_seconds") == line_env.clock()
    assert moved(before, after, "crmbot_reminder_passes_total", outcome="done") == 1
    line_env.clock.advance(60)
    assert clock.run_pass() == DONE
    assert value(scrape(line_env.http), "crmbot_reminder_pass_last_success_timestamp_seconds") == line_env.clock()


def test_every_failed_line_call_names_its_request_id(line_env: LineEnv, caplog: pytest.LogCaptureFixture) -> None:
    """The reply (worker), the profile and the quota (sync SDK): each refusal logged with LINE's request id."""
    caplog.set_level(logging.INFO)
    fake = line_env.fake
    fake.fail(REPLY, 500, headers={"x-line-request-id": "req-reply-500"})
    user = line_env.user()
    fake.fail(PROFILE + user.user_id, 503, times=3, headers={"x-line-request-id": "req-profile-503"})
    user.follow()
    for _ in range(4):  # the reply retried (it answered 500), then the profile tried twice more
        line_env.settle()
        line_env.clock.advance(5)
    assert fake.delivered(user.user_id)
    fake.fail(QUOTA, 503, headers={"x-line-request-id": "req-quota-503"})
    with pytest.raises(Exception, match="503"):
        quota_reader(fake.base_url, TOKEN)()
    logged = [r.getMessage() for r in caplog.records if r.name == "bot.line.answers"]
    assert "line: reply: HTTP 500 (x-line-request-id req-reply-500)" in logged
    assert "line: profile: HTTP 503 (x-line-request-id req-profile-503)" in logged
    assert "line: quota: HTTP 503 (x-line-request-id req-quota-503)" in logged
