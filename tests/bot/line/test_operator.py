"""The operator is told of a consultation request at once: a LINE user taps 「相談する」 -> the user's
confirmation -> the lead's consultation is "new" -> one brief in the operator's Slack channel (tier,
A count, the ten answers with their topics, the point to fix, when, the LINE display name), exactly
once: a second tap, a crashed attempt, a retried post or the hook run twice never brief twice.
Real Redis, the fake LINE and Slack APIs, the worker as `crmbot worker` builds it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from bot.app import build_services, create_app, make_consult_hook
from bot.operator import ConsultBriefs
from bot.slack.brief import brief
from bot.worker import Crash, NoFaults, Outcome
from conversations import jobs, keys
from conversations.analytics import Analytics, Lead
from conversations.jobs import Job
from conversations.outputs import ConsultAck
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_webhook import take
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.fakes.slack_api import FakeSlackApi

OPS = "C0OPERATOR"
SLACK_TOKEN = "xoxb-operator-test"
LEASE = 30
ANSWERS = "AABAAADAAC"  # 7 A: B評価; the D at Q7 is the point to fix


class CrashOnce(NoFaults):
    """Crash once, after the API answered, on the first job that ``pick`` chooses."""

    def __init__(self, pick: Callable[[Job], bool]) -> None:
        self.pick = pick
        self.fired = False

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        if not self.fired and self.pick(job):
            self.fired = True
            raise Crash("after deliver")


@pytest.fixture(scope="module")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def slack(fake_slack_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    fake_slack_server.reset()
    yield fake_slack_server
    fake_slack_server.assert_contract_ok()


@dataclass
class Ops:
    env: LineEnv
    slack: FakeSlackApi
    analytics: Analytics

    def posts(self) -> list[dict[str, Any]]:
        return self.slack.messages(OPS)

    def lead_of(self, user: LineUser) -> Lead:
        [lead] = self.analytics.person("line", user.user_id)[-1:]
        return lead


def operator_env(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi, clock: FakeClock,
                 faults: Any = None, channel: str | None = OPS, **changes: Any) -> tuple[Ops, Callable[[], None]]:
    config = line_config(redis_url, fake_line, slack_signing_secret="s", slack_bot_token=SLACK_TOKEN,
                         slack_api_url=slack.base_url, operator_slack_channel=channel, outbox_lease=LEASE, **changes)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock, faults)
    env = LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    return Ops(env, slack, Analytics(r, clock=clock)), worker.close


@pytest.fixture
def ops(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi,
        clock: FakeClock) -> Iterator[Ops]:
    made, close = operator_env(r, redis_url, fake_line, slack, clock)
    yield made
    close()


def consult(ops: Ops, name: str | None = "山田 花子") -> LineUser:
    """A user who follows (with a LINE profile), takes the diagnosis and taps 「相談する」."""
    env = ops.env
    user = env.user()
    if name is not None:
        env.fake.set_profile(user.user_id, name)
    result = take(env, user, ANSWERS)[-2]  # the card, then the first qualification question
    consult_action = result["contents"]["footer"]["contents"][0]["action"]
    user.tap(consult_action["data"])
    env.settle()
    return user


def section_texts(post: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in post["blocks"] if b["type"] == "section" and "text" in b]


def field_texts(post: dict[str, Any]) -> list[str]:
    [fields] = [b["fields"] for b in post["blocks"] if b["type"] == "section" and "fields" in b]
    return [f["text"] for f in fields]


def test_a_request_is_recorded_confirmed_and_briefed_to_the_operator(ops: Ops) -> None:
    env = ops.env
    script = env.svc.script
    user = consult(ops)
    assert env.fake.delivered(user.user_id)[-1]["text"] == script.text("consult_ack")
    lead = ops.lead_of(user)
    assert (lead.consult, lead.consult_at, lead.name, lead.tier) == ("new", env.clock(), "山田 花子", "B")
    assert ops.analytics.open_consultations() == 1

    [post] = ops.posts()
    assert post["text"] == "相談のお申し込み：山田 花子（B評価（Aの数 7/10））"
    assert post["blocks"][0]["text"]["text"] == "相談のお申し込み"
    assert field_texts(post) == ["*お名前*\n山田 花子", "*チャネル*\nLINE", "*結果*\nB評価（Aの数 7/10）",
                                 "*受付*\n2026-01-01 09:00"]  # the injected clock, in Japan time
    answers, point = section_texts(post)
    lines = answers.split("\n")
    assert lines[0] == "*回答*" and len(lines) == 11
    for i, (line, letter) in enumerate(zip(lines[1:], ANSWERS, strict=True)):
        question = script.questions[i]
        assert line == f"Q{i + 1} {question.topic}：*{letter}*　{question.choices[letter].label}"
    q7 = script.questions[6]
    assert point == f"*次に整えたい一点*\nQ7 {q7.topic}（D：{q7.choices['D'].label}）"


def test_a_second_tap_confirms_again_but_briefs_once(ops: Ops) -> None:
    env = ops.env
    user = consult(ops)
    env.clock.advance(120)
    user.tap("k:1")
    env.settle()
    assert env.fake.delivered(user.user_id)[-1]["text"] == env.svc.script.text("consult_again")
    assert len(ops.posts()) == 1
    assert ops.lead_of(user).consult == "new"


def test_a_retake_asked_about_again_is_a_new_lead_and_a_new_brief(ops: Ops) -> None:
    env = ops.env
    user = consult(ops)
    env.clock.advance(120)
    user.say("診断")
    env.settle()
    user.say("相談")  # mid-diagnosis: about the diagnosis under way
    env.settle()
    first, second = ops.posts()
    assert "診断の途中（Q1まで、Aの数 0）" in field_texts(second)[2]
    assert section_texts(second)[0].count("—（未回答）") == 10
    assert len(section_texts(second)) == 1  # no point to fix before the diagnosis is finished
    assert first["blocks"][-1] != second["blocks"][-1]  # the footers name two diagnoses


@pytest.mark.parametrize("which", ["the user's confirmation", "the operator's post"])
def test_a_crashed_attempt_never_briefs_twice(r: redis.Redis, redis_url: str, fake_line: FakeLineApi,
                                              slack: FakeSlackApi, clock: FakeClock, which: str) -> None:
    """A worker dies after the API accepted (the confirmation with the request's figures, or the post
    itself); the job is taken over after its lease: the operator still gets exactly one brief."""
    if which == "the operator's post":
        faults = CrashOnce(lambda job: job.transport == "slack")
    else:
        faults = CrashOnce(lambda job: any(isinstance(o, ConsultAck) for o in job.outputs))
    made, close = operator_env(r, redis_url, fake_line, slack, clock, faults=faults)
    try:
        user = consult(made)
        assert faults.fired
        clock.advance(LEASE + 1)
        made.env.settle()
        assert len(made.posts()) == 1
        assert made.env.fake.delivered(user.user_id)[-1]["text"] == made.env.svc.script.text("consult_ack")
        assert made.lead_of(user).consult == "new"
        assert not [k for k in r.scan_iter(match=f"crmbot:{{op:{OPS}}}:out") if r.hlen(k)]  # nothing left over
    finally:
        close()


def test_the_hook_run_twice_queues_one_post(ops: Ops) -> None:
    """The sink runs the hook again when a worker died between the hook and marking the lead told."""
    env = ops.env
    user = consult(ops)
    lead = ops.lead_of(user)
    hook = make_consult_hook(env.svc.config, env.svc.script, client=env.r, clock=env.clock)
    assert isinstance(hook, ConsultBriefs)
    hook(lead)
    hook(lead)
    assert env.r.hlen(jobs.mailbox(keys.operator_tag(OPS))) == 0  # nothing queued again
    env.settle()
    assert len(ops.posts()) == 1
    assert env.r.ttl(keys.consult_briefed(OPS, lead.id)) > 0


def test_without_an_operator_channel_the_request_is_recorded_only(
        r: redis.Redis, redis_url: str, fake_line: FakeLineApi, slack: FakeSlackApi, clock: FakeClock) -> None:
    made, close = operator_env(r, redis_url, fake_line, slack, clock, channel=None)
    try:
        assert not isinstance(make_consult_hook(made.env.svc.config, made.env.svc.script), ConsultBriefs)
        user = consult(made)
        assert made.lead_of(user).consult == "new"  # the console's badge still shows it
        assert slack.calls() == []
    finally:
        close()


def test_the_brief_of_a_test_user_in_english(ops: Ops) -> None:
    from conversations.content import load_script

    lead = Lead(id="web:W1:1-1", channel="web", user_id="W1", started=1.0, finished=2.0, reached=10,
                answers="AAAAAAAAAA", consult="new", consult_at=1_767_225_600.0, test=True, number=1)
    text, blocks = brief(load_script("en"), "en", lead)
    assert text == "Consultation request: (not known) (Grade A (10/10 A answers))"
    assert blocks[0]["text"]["text"] == "Consultation request (a test from the try-it page)"
    assert blocks[-2]["text"]["text"] == "*The one point to fix next*\nAll A: on to the next theme"


def test_a_request_with_no_diagnosis_is_a_lead_without_answers_briefed_once(ops: Ops) -> None:
    """No diagnosis, no answers: the request still reaches the operator (a lead numbered 0, in the console's
    leads, never in the funnel's diagnoses), and a second request does not brief again."""
    env = ops.env
    user = env.user()
    env.fake.set_profile(user.user_id, "佐藤 一郎")
    user.follow()
    env.settle()
    user.say("相談する")
    env.settle()
    env.clock.advance(3600)
    user.say("相談したい")
    env.settle()
    [lead] = ops.analytics.person("line", user.user_id)
    assert (lead.number, lead.answers, lead.consult, lead.tier) == (0, "", "new", None)
    assert [x.id for x in ops.analytics.leads()] == [lead.id]
    assert ops.analytics.funnel()["started"] == 0  # a request is not a diagnosis started
    assert ops.analytics.open_consultations() == 1
    [post] = ops.posts()
    assert post["text"] == "相談のお申し込み：佐藤 一郎（診断なし（診断の前のお申し込み））"
    assert not [t for t in section_texts(post) if t.startswith("*回答*")]  # no empty answers listed
    user.tap("s")  # the diagnosis taken afterwards is a lead of its own, asked about with its own request
    env.settle()
    assert len(ops.analytics.person("line", user.user_id)) == 2
