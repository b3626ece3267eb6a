"""Content experiments end to end on LINE: scripted users on signed webhooks, the web tier committing, the worker
delivering and counting. Two variants are assigned (by the diagnosis' hash: both occur), recorded on the record,
shown (the question's and the button's text LINE receives), counted per variant once under redelivery, and ending
an experiment shows its winner to a new diagnosis that the hash would have given the other."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.app import build_services, create_app
from bot.booking_news import BookingNews
from bot.cli import remind_cmd
from conversations import experiments, keys
from conversations.content import Experiment
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.segments import parse_variants
from conversations.transports import Transport
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.conftest import FakeClock
from tests.conversations.experiment_content import CTA_B, Q1_SHORT, content_dir
from tests.fakes.line_api import FakeLineApi


@pytest.fixture
def env(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock, tmp_path: Path) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line, content_dir=content_dir(tmp_path))
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def users_with(exp: Experiment, variant: str, count: int, skip: int = 0) -> list[str]:
    """LINE user IDs whose first diagnosis the hash gives ``variant`` of ``exp``."""
    found = [uid for uid in (f"U{i:032x}" for i in range(1000))
             if experiments.pick(exp, experiments.identity("line", uid, 1)) == variant]
    return found[skip:skip + count]


def record(env: LineEnv, user_id: str) -> Conv:
    return Conv.from_json(env.r.get(keys.conv(Subject(Transport.LINE, user_id))))


def shown(env: LineEnv, user_id: str) -> str:
    return json.dumps(env.fake.delivered(user_id), ensure_ascii=False, separators=(",", ":"))


def start(env: LineEnv, user_id: str) -> LineUser:
    u = env.user(user_id)
    u.follow()
    env.settle()
    u.tap("s")
    env.settle()
    return u


def finish(env: LineEnv, u: LineUser) -> None:
    for q in range(10):
        u.tap(f"a:1:{q}:B")
        env.clock.advance(15)
        env.settle()


def test_two_variants_are_assigned_recorded_shown_and_counted_once(env: LineEnv) -> None:
    script = env.svc.script
    cta, q1 = script.experiments
    plain_q1 = script.questions[0].text
    people = {"a": users_with(cta, "a", 2), "b": users_with(cta, "b", 2)}
    for variant, ids in people.items():
        for uid in ids:
            u = start(env, uid)
            var = parse_variants(record(env, uid).var)
            assert var["consult-cta"] == variant  # recorded on the diagnosis when it starts
            assert var["q1"] == experiments.pick(q1, experiments.identity("line", uid, 1))
            first = shown(env, uid)
            assert (Q1_SHORT["ja"] in first) == (var["q1"] == "short")
            assert (plain_q1 in first) == (var["q1"] == "plain")
            finish(env, u)
            assert parse_variants(record(env, uid).var) == var  # kept for the whole diagnosis
            result = shown(env, uid)[len(first):]
            assert (f'"label":"{CTA_B["ja"]}"' in result) == (variant == "b")
            assert ('"label":"相談する"' in result) == (variant == "a")
    assert {parse_variants(record(env, uid).var)["q1"] for ids in people.values() for uid in ids} <= {"plain", "short"}

    # one of each asks for a consultation; LINE delivers the b user's webhook twice
    asker_a, asker_b = env.user(people["a"][0]), env.user(people["b"][0])
    asker_a.tap("k:1")
    event = asker_b.postback_event("k:1")
    asker_b.send(event)
    asker_b.send({**event, "deliveryContext": {"isRedelivery": True}})
    env.settle()
    # b's asker books; the news is handed over twice (a retried request): it counts once
    [counter] = [h for h in env.svc.booking_news.hooks if isinstance(h, experiments.BookedCounter)]
    for _ in range(2):
        counter(BookingNews("booked", Subject(Transport.LINE, people["b"][0]), None, "owner", "news-1"))

    state = experiments.read(env.svc.redis, cta)
    assert state.winner == ""
    assert state.counts["a"] == experiments.Counts(started=2, finished=2, requested=1, booked=0, finished_requested=1)
    assert state.counts["b"] == experiments.Counts(started=2, finished=2, requested=1, booked=1, finished_requested=1)
    q1_state = experiments.read(env.svc.redis, q1)
    assert sum(c.started for c in q1_state.counts.values()) == 4  # the other experiment counts the same people


def test_ending_shows_the_winner_to_a_new_diagnosis_and_keeps_a_snapshot(env: LineEnv) -> None:
    _, q1 = env.svc.script.experiments
    before = users_with(q1, "plain", 1)[0]
    finish(env, start(env, before))
    assert Q1_SHORT["ja"] not in shown(env, before)
    assert experiments.end(env.svc.redis, q1, "short", now=env.clock(), by="test") == "short"
    assert experiments.end(env.svc.redis, q1, "plain", now=env.clock(), by="test") == "short"  # once: kept
    assert not env.r.keys("crmbot:{x:q1}:*:*")  # the sets are gone; the snapshot stays
    snapshot = experiments.read(env.svc.redis, q1)
    assert (snapshot.winner, snapshot.ended_by) == ("short", "test")
    assert snapshot.counts["plain"] == experiments.Counts(started=1, finished=1)

    after = users_with(q1, "plain", 1, skip=1)[0]  # the hash says "plain", the ended experiment "short"
    finish(env, start(env, after))
    assert parse_variants(record(env, after).var)["q1"] == "short"
    assert Q1_SHORT["ja"] in shown(env, after)
    assert experiments.read(env.svc.redis, q1) == snapshot  # nothing counts into an ended experiment


def test_a_drop_off_nudge_asks_the_question_in_the_diagnosis_variants_wording(env: LineEnv, redis_url: str) -> None:
    _, q1 = env.svc.script.experiments
    uid = users_with(q1, "short", 1)[0]
    start(env, uid)  # 2026-01-01 09:00 in Japan; Q1 left open
    before = len(env.fake.delivered(uid))
    env.clock.t += 86400 + 1800  # the next day, 09:30: due, and within the hours pushes are sent
    out = io.StringIO()
    when = datetime.fromtimestamp(env.clock.t, ZoneInfo("Asia/Tokyo")).isoformat()
    assert remind_cmd(env.svc.config, when, False, out=out) == 0
    assert "line nudge" in out.getvalue()
    env.settle()
    pushed = json.dumps(env.fake.delivered(uid)[before:], ensure_ascii=False)
    assert Q1_SHORT["ja"] in pushed and env.svc.script.questions[0].text not in pushed
