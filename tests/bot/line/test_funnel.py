"""The operator's figures end to end: scripted users on signed LINE webhooks and Slack DMs, the web tier
committing, the worker delivering (and counting), and exactly the expected funnel read back.

Nothing is counted twice: a redelivered webhook, a double tap, going back and answering again, a
reply retried after LINE answered 500 (its figures applied on both attempts), a user who unfollows
while their last reply is still waiting (it is never sent, but the diagnosis counts as finished).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import redis

from bot.analytics_sink import StatsSink
from bot.app import build_services, create_app
from bot.core import Bot, InboundEvent
from bot.outbox import Outbox
from bot.redis_conn import connect_async
from bot.worker import DELIVERED, Attempt, Outcome, Worker, WorkerThread
from conversations import analytics, inputs
from conversations.analytics import Analytics
from conversations.errors import StoreUnavailable
from conversations.jobs import Figures
from conversations.keys import Subject
from conversations.outputs import ConsultAck
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.bot.slack import conftest as slack_conftest
from tests.bot.slack.conftest import ALICE, BOB, CH, WS, SlackEnv
from tests.bot.slack.conftest import SECRET as SLACK_SECRET
from tests.conftest import FakeClock
from tests.fakes.line_api import REPLY, FakeLineApi
from tests.fakes.slack_api import FakeSlackApi

fake_slack_server, fake_slack = slack_conftest.fake_slack_server, slack_conftest.fake_slack  # the Slack fixtures

DAY = 86400.0
JAN1, JAN2 = date(2026, 1, 1), date(2026, 1, 2)  # the FakeClock starts at 2026-01-01 09:00 Japan time


class Both:
    """LINE and Slack on one app, one store, one worker."""

    def __init__(self, line: LineEnv, slack: SlackEnv) -> None:
        self.line = line
        self.slack = slack
        self.clock = line.clock
        self.stats = Analytics(line.r, clock=line.clock, expiry=line.svc.config.conversation_ttl)

    def settle(self) -> int:
        return self.line.settle()

    # -- LINE -------------------------------------------------------------------------------------
    def follower(self, user_id: str) -> LineUser:
        u = self.line.user(user_id)
        u.follow()
        self.settle()
        return u

    def start(self, u: LineUser) -> None:
        u.tap("s")
        self.settle()

    def answer(self, u: LineUser, sid: int, first_q: int, letters: str, *, settle: bool = True) -> None:
        for i, x in enumerate(letters):
            u.tap(f"a:{sid}:{first_q + i}:{x}")
            self.clock.advance(15)
            if settle:
                self.settle()

    # -- Slack DMs --------------------------------------------------------------------------------
    def slack_diagnosis(self, user: str, letters: str) -> None:
        self.slack.command("", user=user, channel=CH, command="/diagnosis")
        for x in letters:
            message = self.slack.dms(user)[-1]
            [button] = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]
                        if e["value"].startswith("a:") and e["value"].endswith(":" + x)]
            self.slack.click(user, message, button["action_id"], button["value"])
            self.clock.advance(15)


@pytest.fixture
def both(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, fake_slack: FakeSlackApi,
         clock: FakeClock) -> Iterator[Both]:
    config = line_config(redis_url, fake_line, slack_signing_secret=SLACK_SECRET, slack_bot_token=fake_slack.bot_token,
                         slack_api_url=fake_slack.base_url)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    worker = start_worker(config, svc, clock)
    slack = SlackEnv(svc, http, fake_slack, clock, r, worker)
    slack.instrument()
    try:
        yield Both(LineEnv(svc, http, fake_line, clock, r, worker), slack)
        fake_slack.assert_contract_ok()
    finally:
        slack.executor.shutdown(wait=True)
        worker.close()


def questions(shown: list[int], answered: list[int], answers: list[str], dropoff: list[float | None],
              in_progress: dict[int, int] | None = None, stopped: dict[int, int] | None = None) -> list[dict]:
    """The ten question rows; ``answers[q]`` as "A B C D" counts; ``in_progress``/``stopped``: question
    number -> how many are still at it / ended there (0 elsewhere)."""
    out = []
    for q in range(10):
        a, b, c, d = (int(x) for x in answers[q].split())
        out.append({"q": q + 1, "shown": shown[q], "answered": answered[q],
                    "in_progress": (in_progress or {}).get(q + 1, 0), "stopped": (stopped or {}).get(q + 1, 0),
                    "answers": {"A": a, "B": b, "C": c, "D": d}, "dropoff": dropoff[q],
                    "nudged": 0, "resumed": 0})  # no drop-off nudge here (tests/bot/line/test_nudges.py)
    return out


def script_the_users(w: Both) -> dict[str, LineUser]:
    """The scripted day (2026-01-01, Japan time) on LINE; see the test for what each user does."""
    fake = w.line.fake
    u1, u2, u3, u4, u6 = (w.follower("U" + str(i) * 32) for i in (1, 2, 3, 4, 6))

    # U1 finishes with 9 A (tier A); LINE answers 500 to the reply with the result: retried
    w.start(u1)
    w.answer(u1, 1, 0, "AAAAAAAAA")
    fake.fail(REPLY, 500)
    u1.tap("a:1:9:B")
    assert w.settle() == 1  # failed: due again in 2 s
    w.clock.advance(3)
    assert w.settle() == 1  # the same job again: its figures applied a second time
    assert [r.status for r in fake.recorded(REPLY)][-2:] == [500, 200]

    # U2 answers three and stops at Q4
    w.start(u2)
    w.answer(u2, 1, 0, "ABC")

    # U3 answers Q1, Q2 (B), goes back from Q3 and answers Q2 again with D, then finishes (7 A: tier B)
    w.start(u3)
    w.answer(u3, 1, 0, "AB")
    u3.tap("b:1:2")
    w.settle()
    w.answer(u3, 1, 1, "DAAAAABCA")

    # U4 double-taps Q1, and LINE redelivers its Q4 answer (flagged, then once more as it was): tier C
    w.start(u4)
    u4.tap("a:1:0:A")
    u4.tap("a:1:0:A")
    w.settle()
    w.answer(u4, 1, 1, "BB")
    ev = u4.postback_event("a:1:3:B")
    u4.send(ev)
    u4.send(dict(ev, deliveryContext={"isRedelivery": True}))
    u4.send(ev)
    w.settle()
    w.answer(u4, 1, 4, "BBBBBB")

    # U6 answers all ten, but unfollows before the worker sent the result: it is never sent
    w.start(u6)
    w.answer(u6, 1, 0, "DDDDDDDDD")
    u6.tap("a:1:9:D")
    u6.send(u6.event("unfollow", reply=False))
    w.settle()
    return {"U1": u1, "U2": u2, "U3": u3, "U4": u4, "U6": u6}


def test_the_funnel_of_scripted_users_is_exact(both: Both) -> None:
    w = both
    users = script_the_users(w)
    w.slack_diagnosis(ALICE, "AAAAAAAAAA")  # finishes in a Slack DM: tier A
    w.slack_diagnosis(BOB, "AB")  # stops at Q3

    # -- the day itself: U2 and BOB are still in progress ----------------------------------------
    day1 = w.stats.funnel(JAN1, JAN1)
    expected_answers = ["4 0 0 1", "2 1 0 2", *["3 1 0 1"] * 5, "2 2 0 1", "2 1 1 1", "2 2 0 1"]
    assert day1 == {
        "started": 7,
        "finished": 5,
        "in_progress": 2,
        "stopped": 0,
        "questions": questions([7, 7, 7, 6, 5, 5, 5, 5, 5, 5], [7, 7, 6, 5, 5, 5, 5, 5, 5, 5], expected_answers,
                               [0.0] * 10, in_progress={3: 1, 4: 1}),  # BOB at Q3, U2 at Q4
        "tiers": {"A": 2, "B": 1, "C": 2},
        "recovered": 0,
    }
    assert w.stats.funnel() == day1
    line = w.stats.funnel(channel="line")
    assert (line["started"], line["finished"], line["in_progress"]) == (5, 4, 1)
    assert line["tiers"] == {"A": 1, "B": 1, "C": 2}
    slack = w.stats.funnel(channel="slack")
    assert (slack["started"], slack["finished"], slack["in_progress"], slack["tiers"]) == (2, 1, 1,
                                                                                          {"A": 1, "B": 0, "C": 0})
    assert [x["shown"] for x in slack["questions"]] == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert w.stats.followers() == 4  # U1-U4 (U6 unfollowed)

    # the leads
    lead = {x.user_id: x for x in w.stats.leads()}
    assert set(lead) == {"U" + str(i) * 32 for i in (1, 2, 3, 4, 6)} | {f"{WS}.{ALICE}", f"{WS}.{BOB}"}
    u1, u2, u3 = (lead["U" + str(i) * 32] for i in (1, 2, 3))
    assert (u1.tier, u1.a_count, u1.answers, u1.point) == ("A", 9, "AAAAAAAAAB", 9)
    assert (u3.tier, u3.answers, u3.point) == ("B", "ADAAAAABCA", 1)  # the D given on going back
    assert (u2.reached, u2.answers, u2.status(w.clock()), u2.tier) == (4, "ABC", "in_progress", None)
    u6 = lead["U" + "6" * 32]
    assert (u6.status(w.clock()), u6.tier) == ("finished", "C")
    assert [x.user_id for x in w.stats.leads(tier="C")] == ["U" + "6" * 32, "U" + "4" * 32]  # newest first
    assert [x.user_id for x in w.stats.leads(status="in_progress")] == [f"{WS}.{BOB}", "U" + "2" * 32]
    assert [x.user_id for x in w.stats.leads(channel="slack", status="finished")] == [f"{WS}.{ALICE}"]

    # U6's result was never sent; every mailbox is empty (the set-aside job is gone too)
    assert not any(m.get("type") == "flex" for m in w.line.fake.delivered(users["U6"].user_id))
    assert list(w.line.r.scan_iter(match="crmbot:{u:*}:out")) == []

    # -- the next day: U1 takes it again, a new follower starts ------------------------------------
    w.clock.t = analytics.day_start(JAN2) + 3600
    w.start(users["U1"])
    w.answer(users["U1"], 2, 0, "A")
    u5 = w.follower("U" + "5" * 32)
    w.start(u5)
    day2 = w.stats.funnel(JAN2, JAN2)
    assert (day2["started"], day2["finished"], day2["in_progress"]) == (2, 0, 2)
    assert [(x["shown"], x["answered"]) for x in day2["questions"][:3]] == [(2, 1), (1, 0), (0, 0)]
    assert w.stats.funnel(JAN1, JAN1) == day1
    assert w.stats.funnel()["started"] == 9
    assert w.stats.followers() == 5
    retakes = w.stats.person("line", users["U1"].user_id)
    assert [(x.number, x.tier, x.answers) for x in retakes] == [(1, "A", "AAAAAAAAAB"), (2, None, "A")]
    series = w.stats.series(JAN1, JAN2)
    assert [(s["label"], s["started"], s["finished"], s["tiers"]) for s in series] == [
        ("2026-01-01", 7, 5, {"A": 2, "B": 1, "C": 2}), ("2026-01-02", 2, 0, {"A": 0, "B": 0, "C": 0})]

    # -- a week later nobody is in progress: drop-off counts the ones who stopped -----------------
    w.clock.advance(8 * DAY)
    later = w.stats.funnel(JAN1, JAN1)
    dropoff = [0.0] * 10
    dropoff[2] = round(1 / 7, 4)  # BOB stopped at Q3
    dropoff[3] = round(1 / 6, 4)  # U2 stopped at Q4
    assert later == day1 | {"in_progress": 0, "stopped": 2, "questions": questions(
        [7, 7, 7, 6, 5, 5, 5, 5, 5, 5], [7, 7, 6, 5, 5, 5, 5, 5, 5, 5], expected_answers, dropoff,
        stopped={3: 1, 4: 1})}
    assert w.stats.lead(u2.id).status(w.clock()) == "stopped"  # type: ignore[union-attr]
    assert [x.user_id for x in w.stats.leads(status="stopped", start=JAN1, end=JAN1)] == [f"{WS}.{BOB}", u2.user_id]


class Silent:
    """A stand-in for the try-it transport's sender (bot/webchat.py)."""

    transport = "web"

    async def deliver(self, attempt: Attempt) -> Outcome:
        return Outcome(DELIVERED, "ok")

    async def close(self) -> None:
        return None


def test_try_it_users_are_kept_apart_from_every_figure(line_env: LineEnv) -> None:
    """A diagnosis on the "web" channel is a lead of its own (marked as a test), never in a figure
    summed over channels; a LINE user beside it is."""
    env = line_env
    config = env.svc.config
    outbox = Outbox(env.r, ["web"], clock=env.clock)
    web_bot = Bot(env.svc.store, env.svc.machine, outbox, clock=env.clock)

    async def build() -> Worker:
        return Worker(connect_async(config), {"web": Silent()}, figures=StatsSink(expiry=config.conversation_ttl),
                      clock=env.clock)

    web_worker = WorkerThread(build)
    try:
        tester = Subject("web", "trial1")
        for i, inp in enumerate([inputs.Input(inputs.FOLLOW), inputs.Input(inputs.START),
                                 *(inputs.Input(inputs.ANSWER, choice="A", q=q, sid=1) for q in range(10))]):
            web_bot.handle(InboundEvent(tester, f"web-{i}", inp))
            env.clock.advance(15)
        assert web_worker.drain() == 12
    finally:
        web_worker.close()
    u = env.user()
    u.follow()
    u.tap("s")
    env.settle()
    stats = Analytics(env.r, clock=env.clock)
    f = stats.funnel()
    assert (f["started"], f["finished"], f["tiers"]["A"]) == (1, 0, 0)
    assert stats.followers() == 1
    web = stats.funnel(channel="web")
    assert (web["started"], web["finished"], web["tiers"]["A"]) == (1, 1, 1)
    assert [x.channel for x in stats.leads()] == ["line"]
    [trial] = stats.leads(channel="web")
    assert trial.test and trial.tier == "A"


def test_the_first_consultation_hook_runs_once_per_lead(line_env: LineEnv) -> None:
    """The hook runs when a lead's consultation request is first applied: not again for the same job
    retried, nor for a second request; a hook that failed (Redis away) runs again on the retry."""
    env = line_env
    u = env.user()
    u.follow()
    u.tap("s")
    env.settle()
    lead_id = Analytics(env.r).leads()[0].id
    calls: list[analytics.Lead] = []
    failures = [StoreUnavailable("redis: ConnectionError")]

    def hook(lead: analytics.Lead) -> None:
        calls.append(lead)
        if failures:
            raise failures.pop()

    async def build() -> Worker:
        sink = StatsSink(expiry=env.svc.config.conversation_ttl, on_first_consult=hook)
        return Worker(connect_async(env.svc.config), {}, figures=sink, clock=env.clock)

    subject = Subject("line", u.user_id)
    conv = env.svc.store.load(subject)
    consult = analytics.delta_of(conv, conv, (ConsultAck(conv.sid),), subject, env.clock())
    assert consult is not None and consult["lead"]["id"] == lead_id
    worker = WorkerThread(build)
    try:
        for _ in range(2):  # two requests (two figures records), the first one retried once
            env.svc.outbox.put(Figures.new(subject.tag_name, consult))
        worker.drain()
        env.clock.advance(5)
        worker.drain()
    finally:
        worker.close()
    assert [x.id for x in calls] == [lead_id, lead_id]  # failed once, then told
    stored = Analytics(env.r).lead(lead_id)
    assert stored is not None and (stored.consult, stored.consult_at) == ("new", consult["at"])
    assert env.r.hget(analytics.lead_key(lead_id), "cn") == b"done"
    assert Analytics(env.r).open_consultations() == 1
    assert list(env.r.scan_iter(match=f"crmbot:{{u:line:{u.user_id}}}:out")) == []
    assert list(env.r.scan_iter(match=f"crmbot:{{u:line:{u.user_id}}}:figs")) == []

