"""Redis Cluster: three real masters run the LINE diagnosis, the Slack KPI flow and a reminder pass
with zero CROSSSLOT errors and the same results as one server.

Each flow runs twice in one test, first on the suite's single redis-server, then on the cluster
(``REDIS_CLUSTER=1``, connected by the product's own ``bot.redis_conn.connect``), against the same
fake LINE and Slack APIs and the same injected time; what the fakes received must be identical, and
also match what the flow is known to produce. CROSSSLOT is looked for three ways: every node's
``INFO errorstats`` (reset before each test), every exception the Redis clients raise (a spy on
the commands and pipelines of both clients, which also sees redis-py's own client-side slot check),
and every log record.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from redis.cluster import ClusterPipeline, RedisCluster

from bot.app import build_reminders, build_services, create_app
from bot.config import Config
from bot.redis_conn import connect
from conversations import analytics, jobs, keys
from conversations.analytics import Analytics
from conversations.content import load_script
from conversations.keys import Subject, TeamRef
from conversations.machine import Conv
from conversations.teams import TeamStore
from scoring.periods import Quarter
from tests.bot.line.conftest import LineEnv, start_worker
from tests.bot.line.helpers import SECRET, TOKEN, LineUser, last_quick_reply_data, texts
from tests.bot.reminders.conftest import Delivering, World, at
from tests.bot.slack.conftest import (
    ALICE,
    BASE,
    BASE_REPORTED,
    BASE_STORED,
    BOB,
    CH,
    P_Q1_2026,
    Q1_2026,
    START,
    TEAM_NAME,
    TOTALS,
    WS,
    SlackEnv,
    area_line,
    area_names,
    fields_of,
    sections_of,
    txt,
)
from tests.bot.slack.conftest import SECRET as SLACK_SECRET
from tests.bot.slack.conftest import TOKEN as SLACK_TOKEN
from tests.cluster_server import RedisClusterServer
from tests.conftest import FakeClock
from tests.fakes.line_api import MULTICAST, REPLY, FakeLineApi, profile_path
from tests.fakes.slack_api import FakeSlackApi, dm_channel_id
from tests.fakes.slack_signing import event_body

TEAM_TAG = TeamRef(WS, CH).tag[1:-1]

SLOT_ERROR = re.compile(r"CROSSSLOT|same (key )?slot|different slots", re.IGNORECASE)
TAG = re.compile(r"\{([^}]+)\}")

# The LINE user of the diagnosis: its keys' slot is on another node than its queue shard and
# crmbot:{reminders}:*, the keys written beside its Lua commit (checked by the first test).
LINE_USER = "U" + "0" * 31 + "7"
KICKOFF = at("2026-04-01T10:00:00")
# Reminder recipients (answers as stored), spread over the slots: two A tiers (the next theme), two whose
# point to fix is Q1 and two whose point is Q10 (one multicast each).
RECIPIENTS = {f"U{i:032d}": answers for i, answers in enumerate(
    ["AAAAAAAAAA", "AAAAAAABCD", "DDDDDDDDDD", "DAAAAAABCA", "AAAAAAAAAB", "AAAAAABBCD"])}


# ---- the cluster and the two back ends -----------------------------------------------------------


@pytest.fixture(scope="session")
def cluster() -> Iterator[RedisClusterServer]:
    server = RedisClusterServer().start()
    try:
        yield server
    finally:
        server.stop(clean=True)


@pytest.fixture(scope="session")
def apis() -> Iterator[tuple[FakeLineApi, FakeSlackApi]]:
    with FakeLineApi(access_token=TOKEN) as line, FakeSlackApi(bot_token=SLACK_TOKEN) as slack:
        yield line, slack


@dataclass
class Backend:
    name: str
    url: str
    cluster: bool
    client: Any  # redis.Redis, or RedisCluster from the product's connect()

    def config(self, line: FakeLineApi | None = None, slack: FakeSlackApi | None = None, **changes: Any) -> Config:
        cfg = Config(redis_url=self.url, redis_cluster=self.cluster)
        if line is not None:
            cfg = cfg.with_(line_channel_secret=SECRET, line_channel_access_token=TOKEN, line_api_host=line.base_url)
        if slack is not None:
            cfg = cfg.with_(slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN,
                            slack_api_url=slack.base_url)
        return cfg.with_(**changes)


@dataclass
class SlotErrors:
    """Exceptions raised by the Redis clients, and log records, that mention a slot problem."""

    raised: list[str] = field(default_factory=list)

    def found(self, caplog: pytest.LogCaptureFixture) -> list[str]:
        logged = [
            f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
            for r in caplog.records
        ]
        return self.raised + [x for x in logged if SLOT_ERROR.search(x)]


@pytest.fixture
def slot_errors(monkeypatch: pytest.MonkeyPatch) -> SlotErrors:
    """Spies on every command and pipeline of both clients: a slot error is recorded, then raised as before."""
    seen = SlotErrors()

    def spy(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            except Exception as e:
                if SLOT_ERROR.search(str(e)) or isinstance(e, redis.exceptions.ClusterCrossSlotError):
                    seen.raised.append(f"{type(e).__name__}: {e}")
                raise

        monkeypatch.setattr(cls, name, wrapper)

    spy(RedisCluster, "execute_command")
    spy(ClusterPipeline, "execute")
    spy(redis.Redis, "execute_command")
    spy(redis.client.Pipeline, "execute")
    return seen


@pytest.fixture
def single(r: redis.Redis, redis_url: str) -> Backend:
    return Backend("single", redis_url, False, r)  # `r` has flushed the database


@pytest.fixture
def on_cluster(cluster: RedisClusterServer) -> Iterator[Backend]:
    client = connect(Config(redis_url=cluster.url, redis_cluster=True))
    assert isinstance(client, RedisCluster)
    client.flushdb()  # every primary
    for node in cluster.node_clients():
        node.config_resetstat()  # errorstats start from zero
        node.close()
    yield Backend("cluster", cluster.url, True, client)
    client.close()


def crossslot_replies(cluster: RedisClusterServer) -> dict[int, Any]:
    """CROSSSLOT errors each node answered since the test began (from the server's own counters)."""
    found = {}
    for port, node in zip(cluster.ports, cluster.node_clients(), strict=True):
        stats = node.info("errorstats")
        node.close()
        if "errorstat_CROSSSLOT" in stats:
            found[port] = stats["errorstat_CROSSSLOT"]
    return found


def assert_no_crossslot(cluster: RedisClusterServer, errors: SlotErrors, caplog: pytest.LogCaptureFixture) -> None:
    assert crossslot_replies(cluster) == {}
    assert errors.found(caplog) == []


def node_of(client: RedisCluster, key: str) -> str:
    return client.get_node_from_key(key).name


# ---- the three flows (each returns what the outside world saw) ----------------------------------


def answer_button(fake: FakeLineApi, user: LineUser, letter: str) -> str:
    data = [d for d in last_quick_reply_data(fake.delivered(user.user_id)) if d.startswith("a:")]
    assert data, fake.summary()
    return next(d for d in data if d.endswith(":" + letter))


def line_flow(backend: Backend, fake: FakeLineApi) -> dict[str, Any]:
    """Follow, start, ten answers by the buttons sent, one event redelivered, one stale tap, opt in."""
    fake.reset()
    clock = FakeClock()
    config = backend.config(line=fake)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    env = LineEnv(svc, create_app(services=svc).test_client(), fake, clock, backend.client, worker)
    try:
        user = env.user(LINE_USER)
        fake.set_profile(LINE_USER, "クラスタ 花子")  # the worker fetches the display name at follow
        user.follow()
        env.settle()
        user.tap(last_quick_reply_data(fake.delivered(user.user_id))[0])  # the start button
        env.settle()
        for i, letter in enumerate("AAAAAAABCD"):
            ev = user.postback_event(answer_button(fake, user, letter))
            user.send(ev)
            env.settle()
            if i == 2:  # LINE redelivers the third answer, then sends it once more as it was
                user.send(dict(ev, deliveryContext={"isRedelivery": True}))
                user.send(ev)
                env.settle()
            if i == 4:  # a minute later an old Q1 button is tapped
                clock.advance(60)
                user.tap("a:1:0:D")
                env.settle()
        user.tap("o:1")  # yes to the quarterly reminder
        env.settle()
        fake.assert_contract_ok()
        conv = Conv.from_json(backend.client.get(keys.conv(Subject("line", LINE_USER))))
        stats = Analytics(backend.client, clock=clock)
        return {
            "funnel": stats.funnel(),
            "leads": [(x.id, x.answers, x.tier, x.remind, x.reached, x.status(clock())) for x in stats.leads()],
            "followers": stats.followers(),
            "delivered": fake.delivered_all(),
            "requests": [(r.method, r.path, r.status) for r in fake.recorded()],
            "state": (conv.state, conv.sid, conv.last, conv.remind),
            "pending": pending(backend.client),
            "opted_in": sorted(x.decode() for x in backend.client.smembers(keys.REMIND_INDEX)),
            "name": [lead.name for lead in Analytics(backend.client, clock=clock).person("line", LINE_USER)],
        }
    finally:
        worker.close()


def slack_flow(backend: Backend, fake: FakeSlackApi) -> dict[str, Any]:
    """/kpi setup, /kpi and the modal submitted with a quarter's figures, the result in the channel,
    and App Home opened with Slack retrying the event."""
    fake.reset()
    clock = FakeClock(START)  # 1 April: January-March has ended
    config = backend.config(slack=fake)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    env = SlackEnv(svc, create_app(services=svc).test_client(), fake, clock, backend.client, worker)
    env.instrument()
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    bolt_log.addHandler(env.errors)
    try:
        env.setup_team()
        clock.advance(86400)
        env.report(BASE)
        home = event_body({"type": "app_home_opened", "user": BOB, "channel": dm_channel_id(BOB), "tab": "home",
                           "event_ts": "1767225600.000100"}, event_id="Ev0CLUSTERHOME")
        env.ok(home)
        env.ok(home, retry_num=1)
        env.settle()
        fake.assert_contract_ok()
        assert not env.errors.records, [r.getMessage() for r in env.errors.records]
        report = env.teams.report(TeamRef(WS, CH), Q1_2026)
        assert report is not None
        return {
            "channel": [(m["text"], m.get("blocks")) for m in env.channel_messages(CH)],
            "files": [(f["title"], f["alt_txt"], f["mimetype"]) for f in fake.files(CH)],
            # every hint consumed and every recovery mark cleared once the worker delivered
            "hints": (backend.client.zcard(jobs.due(jobs.shard_of(TEAM_TAG))),
                      backend.client.llen(jobs.ready(jobs.shard_of(TEAM_TAG)))),
            "ephemerals": env.ephemerals(CH),
            "views": [v.get("blocks") for v in fake.opened_views()],
            "home": [(c.args["user_id"], c.args["view"]) for c in fake.calls("views.publish")],
            "stored": (dict(report.values), report.by, report.at),
            "quarters": env.teams.quarters(TeamRef(WS, CH)),
            "audit": [(a["kind"], a["quarter"], a["by"]) for a in env.teams.audit(TeamRef(WS, CH))],
            "pending": pending(backend.client),
            "catalog_names": area_names(env),
        }
    finally:
        bolt_log.removeHandler(env.errors)
        env.executor.shutdown(wait=True)
        worker.close()


def reminder_flow(backend: Backend, line: FakeLineApi, slack: FakeSlackApi) -> dict[str, Any]:
    """Two teams (one paused) and six opted-in LINE users; the kickoff pass, then the pass again."""
    line.reset()
    slack.reset()
    line.quota = None
    clock = FakeClock()
    config = backend.config(line=line, slack=slack)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    world = World(backend.client, backend.url, clock, line, slack, svc, Delivering(build_reminders(svc), worker),
                  TeamStore(backend.client), worker)
    try:
        world.team("C1", "本店")
        paused = world.team("C2", "二号店")
        world.teams.set_reminders(paused, False)
        for user_id, answers in RECIPIENTS.items():
            world.line_user(user_id, answers)
        clock.t = KICKOFF
        first = world.reminders.run(clock())
        clock.t = KICKOFF + 600
        second = world.reminders.run(clock())  # exactly once: nothing is sent again
        line.assert_contract_ok()
        slack.assert_contract_ok()
        multicasts = sorted((sorted(r.json["to"]), r.json["messages"]) for r in line.recorded(MULTICAST))
        return {
            "first": (sorted(first.queued), sorted(first.skipped)),
            "second": (second.queued, second.skipped),
            "slack": {ch: [(m["text"], m.get("blocks")) for m in slack.messages(ch)] for ch in ("C1", "C2")},
            "multicasts": multicasts,
            "recipients": sorted(world.multicast_recipients()),
            "pending": pending(backend.client),
        }
    finally:
        worker.close()


# ---- the tests ----------------------------------------------------------------------------------


def test_cluster_has_three_masters_and_the_flows_keys_land_on_different_ones(
    cluster: RedisClusterServer, on_cluster: Backend
) -> None:
    client = on_cluster.client
    assert len(client.get_primaries()) == 3
    for node in cluster.node_clients():
        assert node.cluster("INFO")["cluster_state"] == "ok"
        node.close()
    # The writes that go beside a Lua script (outbox index, reminder index) are on other nodes than
    # the user's own keys, so a cross-slot mistake could not hide on a shared node.
    user = Subject("line", LINE_USER)
    shard = jobs.shard_of(user.tag_name)
    assert node_of(client, keys.conv(user)) != node_of(client, jobs.due(shard))
    assert node_of(client, keys.conv(user)) != node_of(client, keys.REMIND_INDEX)
    figures_shard = analytics.shard_of("line", LINE_USER)
    assert node_of(client, keys.conv(user)) != node_of(client, analytics.active_key(figures_shard))
    assert len({node_of(client, analytics.base(k)) for k in range(analytics.SHARDS)}) == 3  # figures spread out
    assert node_of(client, keys.team(TeamRef(WS, CH))) != node_of(client, keys.ALL_TEAMS)
    assert len({node_of(client, keys.conv(Subject("line", u))) for u in RECIPIENTS}) == 3


def test_line_diagnosis_on_the_cluster_matches_one_server(
    single: Backend, on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    line, _ = apis
    expected = line_flow(single, line)
    got = line_flow(on_cluster, line)
    assert got == expected

    messages = got["delivered"][LINE_USER]
    # greeting, Q1..Q10, stale notice + the current question again, result, the first optional question,
    # confirmation (the reminder's offer comes later, one offer a reply); the redelivered answer and its
    # repeat added nothing
    assert len(messages) == 16
    assert {path for _, path, _ in got["requests"]} == {REPLY, profile_path(LINE_USER)}
    assert got["name"] == ["クラスタ 花子"]
    assert all(status == 200 for _, _, status in got["requests"])
    assert load_script("ja", None).text("stale", number=6) in texts(messages)
    result = next(m for m in messages if m["type"] == "flex")
    assert "B評価" in result["altText"] and "7/10" in result["altText"]
    questions = [m["text"].split()[0] for m in messages if re.match(r"Q\d+/10", m.get("text", ""))]
    assert questions == [f"Q{i}/10" for i in (1, 2, 3, 4, 5, 6, 6, 7, 8, 9, 10)]  # Q6 again after the stale tap
    assert got["state"] == ("done", 1, "AAAAAAABCD", True)
    assert got["pending"] == 0
    # the operator's figures, applied by the worker in the person's {stats:<k>} slot: the same on both
    funnel = got["funnel"]
    assert (funnel["started"], funnel["finished"], funnel["tiers"]) == (1, 1, {"A": 0, "B": 1, "C": 0})
    assert [(x["shown"], x["answered"]) for x in funnel["questions"]] == [(1, 1)] * 10
    assert [x["answers"][letter] for x, letter in zip(funnel["questions"], "AAAAAAABCD", strict=True)] == [1] * 10
    assert [lead[1:] for lead in got["leads"]] == [("AAAAAAABCD", "B", True, 10, "finished")]
    assert got["followers"] == 1
    assert got["opted_in"] == [f"line:{LINE_USER}"]
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_slack_kpi_flow_on_the_cluster_matches_one_server(
    single: Backend, on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    _, slack = apis
    expected = slack_flow(single, slack)
    got = slack_flow(on_cluster, slack)
    assert got == expected

    announcement, result, chart = got["channel"]
    assert chart == ("", None)  # the radar chart shared after the result, by the same job's next step
    [(title, alt, mimetype)] = got["files"]
    assert mimetype == "image/png" and TEAM_NAME in title and "データ品質 8.0" in alt
    assert got["hints"] == (0, 0)
    assert TEAM_NAME in announcement[0]
    assert result[0] == f"CRM KPI {P_Q1_2026}｜{TEAM_NAME}: {txt('overall')} 7.1/10"
    names = got["catalog_names"]
    message = {"blocks": result[1]}
    assert fields_of(message) == [
        area_line(names[area], score, reported=BASE_REPORTED[area], total=TOTALS[area])
        for area, score in (("engagement", 7.5), ("data_quality", 8.0), ("satisfaction", 10.0), ("roi", 5.0),
                            ("efficiency", 5.0))
    ]
    assert sections_of(message)[1].startswith(txt("weakest", area=names["roi"], score="5.0") + "\n")
    assert got["stored"] == (BASE_STORED, ALICE, START + 86400)
    assert got["quarters"] == [Quarter(2026, 1)]
    assert got["audit"] == [("report", Q1_2026, ALICE)]
    assert [user for user, _ in got["home"]] == [BOB]  # the retried event was not handled twice
    assert got["pending"] == 0
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_reminder_pass_on_the_cluster_matches_one_server(
    single: Backend, on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    line, slack = apis
    expected = reminder_flow(single, line, slack)
    got = reminder_flow(on_cluster, line, slack)
    assert got == expected

    queued, skipped = got["first"]
    assert queued == sorted([
        "slack T1/C1 kickoff for 2026-Q1",
        "line multicast 2026-Q2 tier A (2 users)",
        "line multicast 2026-Q2 point Q1 (2 users)",
        "line multicast 2026-Q2 point Q10 (2 users)",
    ])
    assert skipped == [("slack T1/C2 kickoff for 2026-Q1", "reminders paused by the team")]
    assert got["second"] == ([], [("slack T1/C2 kickoff for 2026-Q1", "reminders paused by the team")])
    [(text, _)] = got["slack"]["C1"]
    assert P_Q1_2026 in text  # April's kickoff asks for January-March
    assert got["slack"]["C2"] == []
    assert got["recipients"] == sorted(RECIPIENTS)  # everyone once, nobody twice
    assert [len(to) for to, _ in got["multicasts"]] == [2, 2, 2]
    assert got["pending"] == 0
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_every_key_of_one_user_or_team_lives_in_one_slot(
    on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    line, slack = apis
    line_flow(on_cluster, line)
    slack_flow(on_cluster, slack)
    reminder_flow(on_cluster, line, slack)

    client = on_cluster.client
    all_keys = sorted(k.decode() for k in client.scan_iter(match="*", count=1000))
    untagged = [k for k in all_keys if not TAG.search(k)]
    assert untagged == []
    by_tag: dict[str, list[str]] = defaultdict(list)
    for k in all_keys:
        by_tag[TAG.search(k).group(1)].append(k)  # type: ignore[union-attr]
    # what the flows wrote, by owner: a LINE user, a Slack team, the Slack team's reminder ledger, ...
    assert {f"u:line:{LINE_USER}", f"t:{WS}:{CH}", f"ws:{WS}", "teams", "slack", "reminders",
            "u:slack:T1.C1", *(f"u:line:{u}" for u in RECIPIENTS)} <= set(by_tag)
    assert len(by_tag[f"u:line:{LINE_USER}"]) >= 3  # conv, dedupe marks, ...
    assert len(by_tag[f"t:{WS}:{CH}"]) >= 4  # team, kpi:<quarter>, quarters, audit
    seed = cluster.node_clients()[0]
    nodes = set()
    for tag, members in by_tag.items():
        slots = {seed.cluster("KEYSLOT", k) for k in members}  # the server's own hash-slot function
        assert len(slots) == 1, (tag, members, slots)
        nodes.add(node_of(client, members[0]))
    seed.close()
    assert len(nodes) == 3  # the flows really spread over the three masters
    assert_no_crossslot(cluster, slot_errors, caplog)


def booking_flow(backend: Backend, fake: FakeLineApi) -> dict[str, Any]:
    """相談する with no diagnosis, the first slot picked (the pick redelivered), moved, the reminder pass the
    day before, then cancelled: what was said and what is stored (booking ids are random: left out)."""
    from tests.bot.line.test_booking import AVAILABILITY, NOW, postbacks

    fake.reset()
    clock = FakeClock(NOW.timestamp())
    config = backend.config(line=fake)
    svc = build_services(config, clock=clock)
    assert svc.bookings is not None
    svc.bookings.set_availability(AVAILABILITY)
    worker = start_worker(config, svc, clock)
    env = LineEnv(svc, create_app(services=svc).test_client(), fake, clock, backend.client, worker)
    try:
        user = env.user(LINE_USER)
        user.say("相談する")
        env.settle()
        first = postbacks(fake.delivered(LINE_USER)[-2])[0]["data"]  # the carousel, before the diagnosis offer
        ev = user.postback_event(first)
        user.send(ev)
        user.send(dict(ev, deliveryContext={"isRedelivery": True}))
        env.settle()
        change, cancel = (p["data"] for p in postbacks(fake.delivered(LINE_USER)[-1]))
        user.tap(change)
        env.settle()
        user.tap(postbacks(fake.delivered(LINE_USER)[-1])[1]["data"])  # the second slot offered
        env.settle()
        build_reminders(svc).run(NOW.timestamp() + 9 * 3600)  # 18:00 the day before
        env.settle()
        user.tap(cancel)
        env.settle()
        fake.assert_contract_ok()
        [booking] = svc.bookings.bookings_of(Subject("line", LINE_USER))
        consultation = svc.bookings.consultation(Subject("line", LINE_USER))
        return {
            "said": [m.get("altText", m.get("text")) for m in fake.delivered(LINE_USER)],
            "booking": (booking.status, booking.seq, booking.start, booking.end, booking.format),
            "consultation": consultation.status if consultation else None,
            "free": [(s.start, s.free) for s in svc.bookings.free_slots()][:4],
            "pending": pending(backend.client),
        }
    finally:
        worker.close()


def test_line_booking_on_the_cluster_matches_one_server(
    single: Backend, on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    line, _ = apis
    expected = booking_flow(single, line)
    got = booking_flow(on_cluster, line)
    assert got == expected
    said = got["said"]
    assert [x for x in said if x.startswith("ご予約を承りました")] and [x for x in said if x.startswith("明日は")]
    assert said[-1].startswith("ご予約をキャンセルしました")
    assert got["booking"][:2] == ("cancelled", 2) and got["consultation"] == "cancelled"
    assert all(free == 1 for _, free in got["free"]) and got["pending"] == 0
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_redis_cluster_is_configured_from_the_environment(cluster: RedisClusterServer) -> None:
    config = Config.from_env({"REDIS_URL": cluster.url, "REDIS_CLUSTER": "1"})
    assert config.redis_cluster
    client = connect(config)
    try:
        assert isinstance(client, RedisCluster) and client.ping()
    finally:
        client.close()
    assert not Config.from_env({"REDIS_URL": cluster.url}).redis_cluster
    plain = connect(Config.from_env({"REDIS_URL": cluster.url, "REDIS_CLUSTER": "0"}))
    assert type(plain) is redis.Redis  # the single-server path is the plain client, as before
    plain.close()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_CLUSTER": "1"}, "REDIS_CLUSTER=1 needs REDIS_URL"),
        ({"REDIS_CLUSTER": "1", "REDIS_URL": "unix:///tmp/redis.sock"}, "REDIS_CLUSTER=1 needs REDIS_URL"),
        ({"REDIS_CLUSTER": "maybe", "REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_CLUSTER must be 1 or 0"),
    ],
)
def test_bad_cluster_configuration_names_the_variable(env: dict[str, str], message: str) -> None:
    from conversations.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_lua_scripts_survive_a_flushed_script_cache(
    on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    """A node that restarted or failed over has no scripts: every script goes as EVAL with its body
    (conversations.redis_ops.EvalScript), so an emptied cache is never even noticed (no NOSCRIPT)."""
    import hashlib

    from conversations.store import COMMIT_LUA

    line, _ = apis
    line.reset()
    clock = FakeClock()
    config = on_cluster.config(line=line)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    env = LineEnv(svc, create_app(services=svc).test_client(), line, clock, on_cluster.client, worker)
    commit = hashlib.sha1(COMMIT_LUA.encode()).hexdigest()
    nodes = cluster.node_clients()

    def noscript() -> list[int]:
        return [n.info("errorstats").get("errorstat_NOSCRIPT", {}).get("count", 0) for n in nodes]

    before = noscript()
    try:
        user = env.user(LINE_USER)
        user.follow()
        env.settle()
        assert on_cluster.client.script_flush()  # on every primary
        assert [n.script_exists(commit) for n in nodes] == [[False]] * len(nodes)  # really emptied
        user.tap("s")
        env.settle()
        assert [m["text"][:5] for m in line.delivered(LINE_USER)[1:]] == ["Q1/10"]
        assert Conv.from_json(on_cluster.client.get(keys.conv(Subject("line", LINE_USER)))).state == "asking"
        assert sum(n.script_exists(commit)[0] for n in nodes) == 1  # the commit ran (and was cached) on one node
        assert noscript() == before
    finally:
        worker.close()
        for n in nodes:
            n.close()
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_a_commit_is_one_pipeline_on_one_server_and_intent_then_script_on_the_cluster(
    single: Backend, on_cluster: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One server: the recovery mark, the Lua commit and the wake-up hint in one pipelined round trip.
    The cluster writes the mark first, calls the script on the user's node, then writes the hint."""
    from conversations.jobs import Job
    from conversations.store import RedisStore

    calls: list[str] = []

    def count(cls: type, name: str, label: str) -> None:
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append(label if name == "execute" else f"{label} {args[0]}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)

    count(redis.client.Pipeline, "execute", "pipeline")
    count(redis.Redis, "execute_command", "command")
    count(ClusterPipeline, "execute", "cluster pipeline")
    count(RedisCluster, "execute_command", "cluster command")
    seen = {}
    for backend in (single, on_cluster):
        store = RedisStore(backend.client)
        warm = Subject("line", "Uwarm")  # a first call may load the script on a fresh server first
        assert store.update(store.get(warm, "ev-0"), Conv(state="asking", sid=1), "ev-0", ttl=60) == "ok"
        subject = Subject("line", LINE_USER)
        snap = store.get(subject, "ev-1")
        calls.clear()
        job = Job.new("line", subject.user_id, subject.tag_name, [{"type": "question", "sid": 1, "q": 0}], 70.0,
                      job_id="m-1")
        assert store.update(snap, Conv(state="asking", sid=1), "ev-1", ttl=60, job=job, look_at=100.0,
                            remind_index=True) == "ok"
        seen[backend.name] = list(calls)
        shard = jobs.shard_of(subject.tag_name)
        assert backend.client.zscore(jobs.due(shard), job.ref) == 100.0
        assert backend.client.lrange(jobs.ready(shard), 0, -1) == [job.ref.encode()]
        assert backend.client.sismember(keys.REMIND_INDEX, f"line:{LINE_USER}")
        assert backend.client.hexists(jobs.mailbox(subject.tag_name), "m-1")
    assert seen == {"single": ["pipeline"],
                    "cluster": ["cluster pipeline", "cluster command EVAL", "cluster pipeline"]}  # EVAL: no NOSCRIPT


def pending(client: Any) -> int:
    """Jobs not yet delivered, in every mailbox on every node."""
    return sum(1 for _ in client.scan_iter(match="crmbot:{*}:out"))


def test_a_line_webhook_forward_on_the_cluster_as_on_one_server(
    single: Backend, on_cluster: Backend, cluster: RedisClusterServer, apis: tuple[FakeLineApi, FakeSlackApi],
    slot_errors: SlotErrors, caplog: pytest.LogCaptureFixture,
) -> None:
    """crmbot first (CRMBOT_LINE_FORWARD_URL): the forward rides on a commit (its own slot: a call of its own
    on the cluster), or goes on its own; every body reaches the other tool once, with zero CROSSSLOT."""
    from tests.bot.line.test_coexist import group_message, post_body, redelivered
    from tests.fakes.line_receiver import LineWebhookReceiver

    line, _ = apis
    seen = {}
    with LineWebhookReceiver(SECRET) as receiver:
        for backend in (single, on_cluster):
            line.reset()
            receiver.reset()
            clock = FakeClock()
            config = backend.config(line=line, line_forward_url=receiver.url, line_coexist="first")
            svc = build_services(config, clock=clock)
            worker = start_worker(config, svc, clock)
            env = LineEnv(svc, create_app(services=svc).test_client(), line, clock, backend.client, worker)
            try:
                user = env.user(LINE_USER)
                start = user.text_event("診断")
                bodies = [post_body(env, [user.event("follow", follow={"isUnblocked": False})]),
                          post_body(env, [start]), post_body(env, [group_message(user, "グループ")])]
                post_body(env, [redelivered(start)])
                env.settle()
                assert sorted(receiver.accepted()) == sorted(bodies)
                seen[backend.name] = (sorted(r.path for r in line.recorded()), pending(backend.client))
            finally:
                worker.close()
            receiver.assert_contract_ok()
    # only 診断 answered (the follow fetched the display name, said nothing); nothing left
    assert seen["single"] == seen["cluster"] == (sorted([REPLY, profile_path(LINE_USER)]), 0)
    assert_no_crossslot(cluster, slot_errors, caplog)


def test_a_commit_with_a_rider_adds_no_round_trip_on_one_server(
    single: Backend, on_cluster: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job of another slot queued once beside a step (a webhook's forward): in the step's pipeline on one
    server; on the cluster its script is a call of its own, on its node, before the step's."""
    from conversations.jobs import Job, Once
    from conversations.store import RedisStore
    from conversations.transports import ForwardState

    calls: list[str] = []
    for cls, label in ((redis.client.Pipeline, "pipeline"), (redis.Redis, "command"),
                       (ClusterPipeline, "cluster pipeline"), (RedisCluster, "cluster command")):
        name = "execute" if "pipeline" in label else "execute_command"
        original = getattr(cls, name)

        def wrapper(self: Any, *args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
            calls.append(_label if _label.endswith("pipeline") else f"{_label} {args[0]}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, wrapper)
    seen = {}
    for backend in (single, on_cluster):
        store = RedisStore(backend.client)
        warm = Subject("line", "Uwarm")
        assert store.update(store.get(warm, "ev-0"), Conv(state="asking", sid=1), "ev-0", ttl=60) == "ok"
        subject = Subject("line", LINE_USER)
        rider = Job.new("lineforward", "forward", keys.forward_tag("ab12"), [], 70.0,
                        state=ForwardState("e30=", "sig"), job_id="fwd-ab12")
        once = Once(keys.forwarded("ab12"), rider, 60)
        snap = store.get(subject, "ev-1")
        calls.clear()
        assert store.update(snap, Conv(state="asking", sid=1), "ev-1", ttl=60, look_at=100.0, once=once) == "ok"
        seen[backend.name] = list(calls)
        assert backend.client.hget(jobs.mailbox(rider.tag), rider.id) == rider.to_json().encode()
        assert backend.client.get(once.mark) == rider.id.encode()
        shard = jobs.shard_of(rider.tag)
        assert backend.client.zscore(jobs.due(shard), rider.ref) == 100.0
        assert backend.client.lrange(jobs.ready(shard), 0, -1) == [rider.ref.encode()]
        again = Once(once.mark, Job.new("lineforward", "forward", rider.tag, [], 80.0,
                                        state=ForwardState("e30K", "sig"), job_id=rider.id), 60)
        snap = store.get(subject, "ev-2")
        assert store.update(snap, snap.conv, "ev-2", ttl=60, look_at=100.0, once=again) == "ok"
        assert backend.client.hget(jobs.mailbox(rider.tag), rider.id) == rider.to_json().encode()  # queued once
    assert seen == {"single": ["pipeline"],
                    "cluster": ["cluster pipeline", "cluster command EVAL", "cluster command EVAL", "cluster pipeline"]}


def test_content_versions_on_the_cluster_as_on_one_server(on_cluster: Backend, cluster: RedisClusterServer,
                                                          slot_errors: SlotErrors,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """Every content-version key is in the {content} slot: a draft, a publish and a rollback are one script each."""
    from conversations.content import SCRIPTS_DIR, load_script
    from conversations.content_versions import ContentVersions, Draft

    text = (SCRIPTS_DIR / "diagnosis.ja.toml").read_text(encoding="utf-8")
    text = text.replace("売上の合計ではなく、", "（版）売上の合計ではなく、")
    cv = ContentVersions(on_cluster.client, load_script("ja"))
    draft = cv.upload(text.encode(), by="Admin", now=1.0)
    assert isinstance(draft, Draft)
    assert cv.publish(draft, by="Admin", now=2.0) == ("v1", True)
    assert cv.activate("", by="Admin", now=3.0) and cv.activate("v1", by="Admin", now=4.0)
    other = ContentVersions(on_cluster.client, load_script("ja"))
    assert other.active()[0] == "v1" and "（版）" in other.active()[1].questions[0].text
    assert_no_crossslot(cluster, slot_errors, caplog)
