"""Redis's script cache emptied again and again (as by a restart, a failover, ``SCRIPT FLUSH``) while
every path that commits a job runs, the worker running: nothing lost, nothing doubled (issue 14).

One app (LINE, Slack, the console's try page, the operator's channel) and one worker, started in
continuous mode as ``crmbot worker`` runs, serve every path. While a path runs ROUNDS events (each for
a new user, team or reminder pass, so each has its own known messages), a thread calls ``SCRIPT FLUSH``
on the suite's Redis in a tight loop. Then, with a deadline, every expected message must be recorded
by the fake LINE or Slack API (the try page: its inbox), exactly once and nothing else; once quiet,
nothing is left in any mailbox, leases hash, due set, ready list or parked set. The flushes are
counted while the events were being handled, and Redis's own count of SCRIPT calls must agree.

A second test stops a Redis of its own under a running worker with jobs pending (some failed once,
some in flight at LINE): one warning for the outage, one line when it ends, no traceback, and every
job delivered exactly once after the restart.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.app import Services, build_reminders, build_services, build_worker, create_app
from bot.config import Config
from bot.logs import uid
from bot.slack import blocks as slack_blocks
from bot.webchat import Inbox
from bot.webchat import subject as web_subject
from bot.worker import WorkerThread
from conversations import jobs
from conversations.jobs import Job
from conversations.keys import Subject, TeamRef
from conversations.machine import DONE, Conv
from conversations.store import RedisStore
from scoring.periods import Quarter
from tests.bot.console.conftest import PASSWORD, SECRET_KEY, csrf_of
from tests.bot.line.conftest import line_config, start_worker
from tests.bot.line.helpers import SECRET as LINE_SECRET
from tests.bot.line.helpers import TOKEN as LINE_TOKEN
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.reminders.conftest import at
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BOB,
    P_Q1_2026,
    Q1_2026,
    START,
    WS,
    SlackEnv,
    form_values,
    in_view,
    txt,
)
from tests.bot.slack.conftest import SECRET as SLACK_SECRET
from tests.bot.slack.conftest import TOKEN as SLACK_TOKEN
from tests.conftest import FakeClock
from tests.fakes.line_api import REPLY, FakeLineApi
from tests.fakes.slack_api import FakeSlackApi
from tests.redis_server import RedisServer

ROUNDS = 50  # events per path, each with its own known messages
OPS = "C0OPERATOR"  # the operator's Slack channel (CRMBOT_OPERATOR_SLACK_CHANNEL)
LEASE = 30  # CRMBOT_OUTBOX_LEASE (the default)
DEADLINE = 60.0  # seconds for what a path committed to be delivered (it takes a few)
KICKOFF = at("2026-04-01T10:00:00")  # April's reminders (for January-March), 10:00 in Tokyo
TRY = "/console/try/"  # the console's session cookie is limited to /console
Q1 = Quarter.parse(Q1_2026)


class Flusher:
    """``SCRIPT FLUSH`` on a Redis server in a tight loop, in a thread of its own, until stopped;
    bounded (``limit`` flushes, ``seconds``) so that a test that dies leaves no runaway behind."""

    def __init__(self, url: str, *, limit: int = 1_000_000, seconds: float = 120.0) -> None:
        self.client = redis.Redis.from_url(url)
        self.limit = limit
        self.seconds = seconds
        self.count = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="script-flush", daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        try:
            while not self._stop.is_set() and self.count < self.limit and time.monotonic() < deadline:
                self.client.script_flush()
                self.count += 1
        except BaseException as e:  # reported by stop()
            self.error = e

    def start(self) -> Flusher:
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop; the number of flushes done."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.client.close()
        assert not self._thread.is_alive() and self.error is None, f"the flusher failed: {self.error!r}"
        return self.count


@dataclass
class World:
    """The app and the running worker, shared by the paths (each test starts on an empty Redis)."""

    r: redis.Redis
    redis_url: str
    clock: FakeClock
    line: FakeLineApi
    slack: FakeSlackApi
    svc: Services
    http: Any
    worker: WorkerThread
    slack_env: SlackEnv
    flusher: Flusher | None = None
    in_events: int = 0  # flushes while an event was being handled

    def event(self, handle: Callable[[], Any]) -> Any:
        """Handle one event (a webhook, a request, a reminder pass), counting the flushes meanwhile."""
        assert self.flusher is not None
        before = self.flusher.count
        try:
            return handle()
        finally:
            self.in_events += self.flusher.count - before


@pytest.fixture(scope="module")
def shared(redis_url: str, fake_line_server: FakeLineApi, fake_slack_server: FakeSlackApi,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    clock = FakeClock(START)
    config = Config(
        redis_url=redis_url,
        line_channel_secret=LINE_SECRET, line_channel_access_token=LINE_TOKEN, line_api_host=fake_line_server.base_url,
        slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN, slack_api_url=fake_slack_server.base_url,
        slack_rate=None,  # no workspace pacing: ROUNDS teams post within a few fake seconds (each channel is paced)
        console_password=PASSWORD, secret_key=SECRET_KEY, data_dir=tmp_path_factory.mktemp("data"),
        operator_slack_channel=OPS, outbox_lease=LEASE,
    )
    client = redis.Redis.from_url(redis_url)
    svc = build_services(config, clock=clock)
    app = create_app(services=svc)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    slack_env = SlackEnv(svc, app.test_client(), fake_slack_server, clock, client, worker=None)  # settle: Bolt's
    slack_env.instrument()
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    bolt_log.addHandler(slack_env.errors)
    try:
        worker.start()  # continuous, as `crmbot worker`: BRPOP on the hints, a sweep every second
        yield World(client, redis_url, clock, fake_line_server, fake_slack_server, svc, app.test_client(), worker,
                    slack_env)
    finally:
        bolt_log.removeHandler(slack_env.errors)
        slack_env.executor.shutdown(wait=True)
        worker.close()
        client.close()


@pytest.fixture
def world(shared: World, r: redis.Redis, fake_line: FakeLineApi, fake_slack: FakeSlackApi) -> Iterator[World]:
    """The shared world on an emptied Redis (``r`` flushed it) and reset fakes, the clock at START."""
    shared.clock.t = START
    shared.in_events = 0
    shared.slack_env.errors.records.clear()
    yield shared
    assert not shared.slack_env.errors.records, [rec.getMessage() for rec in shared.slack_env.errors.records]


# ---- what was delivered -----------------------------------------------------------------------------


def label(message: dict[str, Any]) -> str:
    """A message in short: its text's first line (a shared file: its name, up to the job id)."""
    if message.get("files"):
        return "file " + str(message["files"][0]["name"]).rsplit("-", 1)[0]
    return str(message.get("text") or message.get("altText") or "").split("\n", 1)[0][:20]


def said(text: str) -> str:
    return label({"text": text})


@dataclass
class Plan:
    """What a path's events must deliver: for each place (a LINE user, a Slack channel, a web user's
    inbox...) the labels of its messages, and how to read what the place got."""

    expected: dict[str, list[str]] = field(default_factory=dict)
    readers: dict[str, Callable[[], list[str]]] = field(default_factory=dict)

    def expect(self, where: str, labels: list[str], read: Callable[[], list[str]]) -> None:
        assert where not in self.expected, where
        self.expected[where] = labels
        self.readers[where] = read

    def observe(self) -> dict[str, list[str]]:
        """What each place got, in no particular order (separate jobs are delivered side by side)."""
        return {where: sorted(read()) for where, read in self.readers.items()}

    def wanted(self) -> dict[str, list[str]]:
        return {where: sorted(labels) for where, labels in self.expected.items()}

    def missing(self) -> dict[str, list[str]]:
        """Places still short of messages, with what they got so far."""
        seen = self.observe()
        return {w: seen[w] for w, labels in self.expected.items() if len(seen[w]) < len(labels)}

    def count(self, kind: str) -> int:
        return sum(len(labels) for where, labels in self.expected.items() if where.startswith(kind + " "))


def line_messages(w: World, user_id: str) -> Callable[[], list[str]]:
    return lambda: [label(m) for m in w.line.delivered(user_id)]


def slack_messages(w: World, channel: str) -> Callable[[], list[str]]:
    return lambda: [label(m) for m in w.slack.messages(channel)]


def slack_ephemerals(w: World, channel: str) -> Callable[[], list[str]]:
    return lambda: [f"{m['user']}:{label(m)}" for m in w.slack.ephemerals(channel)]


def nothing_else(w: World, plan: Plan) -> None:
    """No message went anywhere the plan does not name: LINE users, Slack posts, ephemerals."""
    line_users = {where.split(" ", 1)[1] for where in plan.expected if where.startswith("line ")}
    assert set(w.line.delivered_all()) <= line_users
    posts = [c for c in w.slack.calls("chat.postMessage") if isinstance(c.response, dict) and c.response.get("ok")]
    shared_files = w.slack.files()
    assert len(posts) + sum(len(f["channels"]) for f in shared_files) == plan.count("slack")
    ephemerals = [c for c in w.slack.calls("chat.postEphemeral") if isinstance(c.response, dict) and c.response["ok"]]
    assert len(ephemerals) == plan.count("ephemeral")


# ---- the paths ----------------------------------------------------------------------------------------


def done_user(w: World, user_id: str, answers: str = "AAAAAAABCD", *, remind: bool = False) -> Subject:
    """A LINE user who finished a diagnosis 90 days ago, written as the bot writes it."""
    subject = Subject("line", user_id)
    store = RedisStore(w.r)
    snap = store.get(subject, "seed")
    conv = Conv(state=DONE, sid=1, last=answers, finished=w.clock() - 90 * 86400, updated=w.clock(),
                n=snap.conv.n + 1, remind=remind)
    assert store.update(snap, conv, f"seed-{user_id}", ttl=0, remind_index=remind) == "ok"
    return subject


def line_answer(w: World, plan: Plan) -> None:
    """Each user starts the diagnosis (Q1 by reply), then taps A on it (Q2 by reply)."""
    users = [LineUser(w.http, w.line, w.clock) for _ in range(ROUNDS)]
    for u in users:
        w.event(lambda u=u: u.say("診断"))
    wait(lambda: all(w.line.delivered(u.user_id) for u in users), "Q1 for every user")
    for u in users:
        tap = next(d for d in last_quick_reply_data(w.line.delivered(u.user_id)) if d.endswith(":A"))
        w.event(lambda u=u, tap=tap: u.tap(tap))
        plan.expect(f"line {u.user_id}", ["Q1/10", "Q2/10"], line_messages(w, u.user_id))


def line_follow(w: World, plan: Plan) -> None:
    """A new friend: the greeting (and the worker fetches the profile: no message)."""
    for _ in range(ROUNDS):
        u = LineUser(w.http, w.line, w.clock)
        w.event(u.follow)
        plan.expect(f"line {u.user_id}", [said(w.svc.script.text("greeting"))], line_messages(w, u.user_id))


def consult(w: World, plan: Plan) -> None:
    """A user with a result taps 「相談する」 on its card: the confirmation (the web tier's commit), and
    the operator's brief in their Slack channel (committed by the worker's consultation hook once it
    applied the request to the lead). A request a second, each briefed before the next: the operator's
    channel is paced at one post a second."""
    users = [LineUser(w.http, w.line, w.clock) for _ in range(ROUNDS)]
    for u in users:
        done_user(w, u.user_id)
    for n, u in enumerate(users, 1):
        w.clock.advance(1)
        w.event(lambda u=u: u.tap("k:1"))
        plan.expect(f"line {u.user_id}", [said(w.svc.script.text("consult_ack"))], line_messages(w, u.user_id))
        wait(lambda n=n: len(w.slack.messages(OPS)) >= n, f"brief {n}")
    plan.expect(f"slack {OPS}", [uid(u.user_id) for u in users],  # a brief's footer names its user, hashed
                lambda: [str(m["blocks"][-1]["elements"][0]["text"]).rsplit(" ", 1)[-1] for m in w.slack.messages(OPS)])


def try_page(w: World, plan: Plan) -> None:
    """Each round a new test user (the session's user cleared) types 「診断」: Q1 in their inbox."""
    token = csrf_of(w.http.get("/console/login").get_data(as_text=True))
    assert w.http.post("/console/login", data={"password": PASSWORD, "csrf_token": token}).status_code == 302
    csrf = csrf_of(w.http.get("/console/delivery").get_data(as_text=True))
    inbox = Inbox(w.r)
    for _ in range(ROUNDS):
        with w.http.session_transaction(TRY) as s:
            s.pop("try_user", None)
        res = w.event(lambda: w.http.post(TRY + "send", json={"event": uuid.uuid4().hex, "text": "診断"},
                                          headers={"X-CSRF-Token": csrf}))
        assert res.status_code == 200, res.get_data(as_text=True)
        with w.http.session_transaction(TRY) as s:
            who = web_subject(s["try_user"])
        plan.expect(f"web {who.user_id}", ["Q1/10"],
                    lambda who=who: [label(m) for m in inbox.read(who).messages if m["from"] == "bot"])


RESULT_POST = said(txt("result_title", period=P_Q1_2026, team=""))
CHART = "file kpi-radar-2026-Q1"


def channels() -> list[str]:
    return [f"C0T{i:04d}" for i in range(ROUNDS)]


def team_name(channel: str) -> str:
    return f"チーム{channel[-4:]}"


def team_messages(w: World, plan: Plan, channel: str, *more: str) -> None:
    """A team's channel after `/kpi setup`: the announcement (and ``more``), ALICE's confirmation."""
    plan.expect(f"slack {channel}", [said(txt("setup_announce", user=ALICE, name=team_name(channel))), *more],
                slack_messages(w, channel))
    plan.expect(f"ephemeral {channel}",
                [f"{ALICE}:" + said(txt("setup_done", name=team_name(channel), tz="Asia/Tokyo", fy="4"))],
                slack_ephemerals(w, channel))


def slack_setup(w: World, plan: Plan) -> None:
    for ch in channels():
        w.event(lambda ch=ch: w.slack_env.setup_team(team_name(ch), channel=ch))
        team_messages(w, plan, ch)


def slack_report(w: World, plan: Plan) -> None:
    """A new team reports January-March through the modal: the result post, then its radar chart."""
    for ch in channels():
        w.event(lambda ch=ch: w.slack_env.setup_team(team_name(ch), channel=ch))
        view = w.slack_env.open_report(channel=ch)
        values = in_view(view, form_values(w.slack_env.catalog, BASE, Q1_2026))
        w.event(lambda view=view, values=values: w.slack_env.submit(view, values))
        team_messages(w, plan, ch, RESULT_POST, CHART)


def slack_owners(w: World, plan: Plan) -> None:
    """`/kpi owners`, the modal submitted: the owners' post."""
    owners = {a: (ALICE if i % 2 else BOB) for i, a in enumerate(w.slack_env.catalog.area_keys)}
    values = {f"owner:{a}": {f"owner:{a}": o} for a, o in owners.items()}
    for ch in channels():
        w.event(lambda ch=ch: w.slack_env.setup_team(team_name(ch), channel=ch))
        w.slack_env.command("owners", channel=ch)
        view = w.slack.opened_views()[-1]
        assert view["callback_id"] == slack_blocks.OWNERS_CALLBACK
        w.event(lambda view=view: w.slack_env.submit(view, values))
        team_messages(w, plan, ch, said(txt("owners_post", user=ALICE, lines="")))


def slack_actions(w: World, plan: Plan) -> None:
    """「改善アクションを登録」 under a team's result (the button as the result post carries it, over the
    quarter's figures as a report stores them), the modal submitted: the actions' post."""
    roi = w.slack_env.catalog.name("roi", "ja")
    for ch in channels():
        ref = TeamRef(WS, ch)
        w.event(lambda ch=ch: w.slack_env.setup_team(team_name(ch), channel=ch))
        w.slack_env.teams.submit(ref, Q1, {k: float(v) for k, v in BASE.items()}, ALICE, w.clock())
        team = w.slack_env.teams.get(ref)
        assert team is not None
        button = slack_blocks.actions_button("ja", team, Q1, "roi")
        result = {"type": "message", "channel": ch, "ts": f"{w.clock():.6f}", "text": RESULT_POST, "blocks": [button]}
        w.slack_env.click(ALICE, result, slack_blocks.ACTIONS_ACTION, button["elements"][0]["value"])
        view = w.slack.opened_views()[-1]
        assert view["callback_id"] == slack_blocks.ACTIONS_CALLBACK
        values: dict[str, dict[str, Any]] = {"area": {"a": "roi"}}
        for n in range(1, 4):
            first = n == 1
            values[f"what:{n}"] = {f"what:{n}": f"F2を上げる {ch}" if first else None}
            values[f"owner:{n}"] = {f"owner:{n}": BOB if first else None}
            values[f"due:{n}"] = {f"due:{n}": "2026-06-30" if first else None}
        w.event(lambda view=view, values=values: w.slack_env.submit(view, values))
        team_messages(w, plan, ch, said(txt("actions_post", user=ALICE, period=P_Q1_2026, area=roi, lines="")))


def reminders(w: World, plan: Plan) -> None:
    """Each reminder pass (a second apart) finds one new team (its kickoff, Slack) and one new opted-in
    LINE user (a multicast): both queued by the pass, woken, delivered."""
    engine = build_reminders(w.svc)
    script = w.svc.script
    line_text = said(script.text("reminder_point", number=10, topic=script.questions[9].topic))  # AAAAAAABCD
    for i, ch in enumerate(channels()):
        user = "U" + uuid.uuid4().hex
        done_user(w, user, remind=True)  # seven A: B評価
        w.slack_env.teams.register(TeamRef(WS, ch), team_name(ch), "Asia/Tokyo", ALICE, w.clock())
        w.clock.t = KICKOFF + i
        summary = w.event(lambda: engine.run(w.clock()))
        assert len(summary.queued) == 2, summary
        plan.expect(f"line {user}", [line_text], line_messages(w, user))
        plan.expect(f"slack {ch}", [said(txt("remind_kickoff", period=P_Q1_2026))], slack_messages(w, ch))


PATHS: dict[str, Callable[[World, Plan], None]] = {
    "line_answer": line_answer,
    "line_follow": line_follow,
    "consult_and_brief": consult,
    "try_page": try_page,
    "slack_setup": slack_setup,
    "slack_report": slack_report,
    "slack_owners": slack_owners,
    "slack_actions": slack_actions,
    "reminders": reminders,
}


# ---- waiting, and what is left --------------------------------------------------------------------------


def wait(condition: Callable[[], Any], what: str, timeout: float = DEADLINE,
         failing: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            detail = f"\n{str(failing())[:3000]}" if failing is not None else ""
            raise AssertionError(f"not within {timeout}s: {what}{detail}")
        time.sleep(0.02)  # polling, bounded by the deadline


def leftovers(r: redis.Redis) -> dict[str, int]:
    """Every outbox key still holding something: mailboxes, leases (claims, tombstones), due marks,
    hints, parked jobs."""
    found = {k.decode(): r.hlen(k) for k in r.scan_iter(match=jobs.mailbox("*"))}
    found |= {k.decode(): r.hlen(k) for k in r.scan_iter(match=jobs.leases("*"))}
    for shard in range(jobs.QUEUE_SHARDS):
        for key, size in ((jobs.due(shard), r.zcard), (jobs.ready(shard), r.llen), (jobs.parked(shard), r.zcard)):
            if n := size(key):
                found[key] = n
    return found


def quiet(w: World) -> int:
    """Wait until every mailbox is empty; then, if marks or tombstones are left (a hint seen again while
    its job was in flight leaves the job's mark for a lease), move the clock past the lease and let the
    worker look again. Returns how many times the clock had to move."""
    wait(lambda: not list(w.r.scan_iter(match=jobs.mailbox("*"))), "every mailbox empty",
         failing=lambda: leftovers(w.r))
    moves = 0
    while leftovers(w.r) and moves < 3:
        moves += 1
        w.clock.advance(LEASE + 1)
        w.worker.drain()
    return moves


def script_calls(r: redis.Redis) -> int:
    """SCRIPT commands Redis ran (FLUSH among them): Redis 6 counts them together, Redis 7 per subcommand."""
    stats = r.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k == "cmdstat_script" or k.startswith("cmdstat_script|"))


@pytest.mark.parametrize("path", list(PATHS))
def test_nothing_lost_nothing_doubled_while_the_script_cache_is_flushed(world: World, path: str) -> None:
    calls_before = script_calls(world.r)
    plan = Plan()
    world.flusher = Flusher(world.redis_url).start()
    try:
        PATHS[path](world, plan)
        wait(lambda: not plan.missing(), "every expected message delivered", failing=plan.missing)
    finally:
        flushes = world.flusher.stop()
    moves = quiet(world)
    print(f"\n{path}: {flushes} flushes, {world.in_events} while an event was handled; clock moved {moves}x")
    assert plan.observe() == plan.wanted()  # each message exactly once
    nothing_else(world, plan)
    assert leftovers(world.r) == {}
    world.line.assert_contract_ok()
    world.slack.assert_contract_ok()
    # the cache was emptied while the events were handled, again and again, as Redis counts too
    assert world.in_events >= ROUNDS
    assert script_calls(world.r) - calls_before >= flushes


# ---- a Redis outage under a running worker ----------------------------------------------------------


class Gate:
    """Holds every request to a fake API until opened: a LINE that takes its time to answer."""

    def __init__(self, fake: FakeLineApi) -> None:
        self.fake = fake
        self.opened = threading.Event()
        self._handle = fake.handle_request

    def _held(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Any:
        self.opened.wait(timeout=DEADLINE)
        return self._handle(method, target, headers, body)

    def __enter__(self) -> Gate:
        self.fake.handle_request = self._held  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        self.opened.set()
        del self.fake.handle_request  # the class's own again


def queued(r: redis.Redis) -> list[Job]:
    return [Job.from_json(v) for k in r.scan_iter(match=jobs.mailbox("*")) for v in r.hvals(k)]


OUTAGE_LINES = ("worker: redis unreachable", "worker: redis reachable again")


def test_a_redis_outage_logs_one_warning_not_a_traceback_per_job(
    tmp_path: Path, fake_line: FakeLineApi, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """Jobs pending when Redis goes away under a running worker: some failed once at LINE and wait for
    their retry, some are in flight at LINE (which answers only once Redis is down, so the worker
    cannot record them). The worker keeps failing for a while; the log says so once, and once again
    when Redis is back. Then every job is delivered exactly once: a retry replies, a recovery finds
    its reply token used (the reply got through) and sends nothing more."""
    caplog.set_level(logging.INFO)
    server = RedisServer(persist=True, data_dir=str(tmp_path)).start()  # the test's own, persisting
    client = redis.Redis.from_url(server.url)
    clock = FakeClock()
    config = line_config(server.url, fake_line)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    worker = start_worker(config, svc, clock)
    failed = [LineUser(http, fake_line, clock) for _ in range(6)]
    held = [LineUser(http, fake_line, clock) for _ in range(6)]
    try:
        worker.start()
        fake_line.fail(REPLY, 500, times=len(failed))
        for u in failed:
            u.say("診断")
        wait(lambda: sorted(j.attempts for j in queued(client)) == [1] * len(failed), "the first replies failed")
        with Gate(fake_line) as gate:
            for u in held:
                u.say("診断")
            wait(lambda: fake_line.in_flight == len(held), "the replies in flight at LINE")
            server.stop()  # SIGTERM: the append-only file keeps every job
            gate.opened.set()  # LINE answers now: the replies landed, the worker cannot record them
            wait(lambda: worker.worker.outage.errors >= 10, "the worker failing for a while")
            landed = fake_line.delivered_all()
        server.start()
        clock.advance(LEASE + 1)  # past the retries' backoff and the held claims' lease
        everyone = [u.user_id for u in failed + held]
        wait(lambda: all(len(fake_line.delivered(u)) >= 1 for u in everyone) and not queued(client),
             "every job delivered", failing=fake_line.summary)
        for _ in range(3):  # a tombstone left by a look at a job already delivered goes a lease later
            if not leftovers(client):
                break
            clock.advance(LEASE + 1)
            worker.drain()
        assert leftovers(client) == {}
    finally:
        worker.close()
        client.close()
        server.stop()
    assert {u: len(fake_line.delivered(u)) for u in everyone} == dict.fromkeys(everyone, 1)
    assert set(landed) == {u.user_id for u in held}  # before Redis was back
    lines = [rec.getMessage() for rec in caplog.records]
    assert [sum(m.startswith(what) for m in lines) for what in OUTAGE_LINES] == [1, 1], lines
    assert not [rec for rec in caplog.records if rec.exc_info], "a traceback was logged"
    out, err = capfd.readouterr()
    for text in (caplog.text, out, err):
        assert "Traceback" not in text and not any(line.startswith("  | ") for line in text.splitlines())
