"""Slack end to end: signed requests -> Flask -> Bolt -> the app -> real Redis -> the fake Slack Web API.

Bolt acks first and runs listeners on its thread pool; what they send is committed to the outbox and sent
by the worker (a :class:`bot.worker.WorkerThread` here, as ``crmbot worker`` runs it). Tests never sleep:
:meth:`SlackEnv.settle` waits (bounded) for exactly the work the requests started, listeners then the
worker's deliveries, so "nothing else happened" can be asserted as firmly as "this happened".
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis

from bot.app import Services, build_services, build_worker, create_app
from bot.config import Config
from bot.slack.app import build_slack
from bot.slack.texts import t
from bot.worker import WorkerThread
from conversations import jobs, keys
from conversations.jobs import Job
from conversations.keys import Subject, TeamRef
from conversations.kpi_catalog import Catalog
from conversations.machine import Conv
from conversations.teams import TeamStore
from tests.conftest import FakeClock
from tests.fakes.slack_api import FakeSlackApi, dm_channel_id
from tests.fakes.slack_signing import (
    TEAM_ID,
    block_actions_payload,
    event_body,
    interaction_body,
    signed_headers,
    slash_command_body,
    view_submission_payload,
)

SECRET = "test-signing-secret"
TOKEN = "xoxb-test-token"
WS = TEAM_ID  # the workspace the fake signs for ("T1")
CH = "C0CRM1"
CH2 = "C0CRM2"
ALICE = "U0ALICE"
BOB = "U0BOB"
TEAM_NAME = "本店CRMチーム"
START = 1_775_001_600.0  # the Slack tests start at 2026-04-01T00:00Z = 09:00 in Tokyo: January-March has ended
Q1_2026 = "2026-Q1"  # the quarter a report is for at START (reports are for quarters that have ended)
Q4_2025 = "2025-Q4"
# the same quarters as the team sees them (its business year starts in April, the default)
P_Q1_2026 = "2025年度 第4四半期（2026年1〜3月）"
P_Q4_2025 = "2025年度 第3四半期（10〜12月）"
FEB_2026 = 1_771_113_600.0  # 2026-02-15T00:00Z: 2025-Q4 has ended everywhere, 2026-Q1 is running
LOCALE = "ja"


def txt(key: str, **params: object) -> str:
    return t(LOCALE, key, **params)


class TrackingExecutor(ThreadPoolExecutor):
    """Bolt's listener pool, remembering what is still running so a test can wait for it."""

    def __init__(self) -> None:
        super().__init__(max_workers=5, thread_name_prefix="bolt")
        self._lock = threading.Lock()
        self._running: set[Future[Any]] = set()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut = super().submit(fn, *args, **kwargs)
        with self._lock:
            self._running.add(fut)
        fut.add_done_callback(self._done)
        return fut

    def _done(self, fut: Future[Any]) -> None:
        with self._lock:
            self._running.discard(fut)

    def running(self) -> list[Future[Any]]:
        with self._lock:
            return list(self._running)


class ErrorLog(logging.Handler):
    """Collects ERROR records of Bolt's listener runner: a listener that crashed after its ack."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class SlackEnv:
    svc: Services
    http: Any
    fake: FakeSlackApi
    clock: FakeClock
    r: redis.Redis
    worker: WorkerThread | None = None
    executor: TrackingExecutor = field(default_factory=TrackingExecutor)
    errors: ErrorLog = field(default_factory=ErrorLog)
    listener_errors_expected: bool = False

    # ---- plumbing -----------------------------------------------------------------------------
    @property
    def teams(self) -> TeamStore:
        return self.svc.slack.teams

    @property
    def catalog(self) -> Catalog:
        return self.svc.slack.catalog

    def instrument(self) -> None:
        runner = self.svc.slack.app.listener_runner
        runner.listener_executor = self.executor
        runner.lazy_listener_runner.executor = self.executor

    def rebuild_slack(self, catalog: Catalog | None = None, *, teams: TeamStore | None = None,
                      post_lease: float | None = None) -> None:
        """Swap in Slack parts built over another catalog or team store (same client, Redis, outbox and clock)."""
        old = self.svc.slack
        self.svc.slack = build_slack(
            signing_secret=SECRET, client=old.client, redis_client=self.svc.redis, bot=self.svc.bot,
            script=self.svc.script, catalog=catalog or old.catalog, teams=teams or old.teams, outbox=self.svc.outbox,
            locale=self.svc.config.locale, clock=self.clock,
            post_lease=self.svc.config.outbox_lease if post_lease is None else post_lease,
        )
        self.instrument()

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until every listener Bolt started is done, then let the worker deliver what they queued."""
        deadline = time.monotonic() + timeout
        while True:
            for fut in self.executor.running():
                fut.result(timeout=max(0.0, deadline - time.monotonic()))
            if self.worker is not None:
                self.worker.drain(timeout=max(0.1, deadline - time.monotonic()))
            if not self.executor.running():
                return
            if time.monotonic() > deadline:
                raise AssertionError("Bolt listeners still running after the deadline")

    def post(self, body: bytes, *, secret: str = SECRET, timestamp: int | None = None,
             retry_num: int | None = None) -> Any:
        ts = int(time.time()) if timestamp is None else timestamp  # Bolt checks against the wall clock
        headers = signed_headers(secret, body, ts, retry_num=retry_num,
                                 retry_reason="http_timeout" if retry_num else None)
        return self.http.post("/slack/events", data=body, headers=headers)

    def ok(self, body: bytes, **kw: Any) -> Any:
        res = self.post(body, **kw)
        assert res.status_code == 200, (res.status_code, res.get_data(as_text=True))
        self.settle()
        return res

    # ---- what users do --------------------------------------------------------------------------
    def command(self, text: str, *, user: str = ALICE, channel: str = CH, command: str = "/kpi") -> Any:
        return self.ok(slash_command_body(command, text, user, channel))

    def setup_team(self, name: str = TEAM_NAME, *, channel: str = CH, user: str = ALICE, extra: str = "") -> None:
        self.command(f"setup {name} {extra}".strip(), user=user, channel=channel)
        assert self.teams.get(TeamRef(WS, channel)) is not None, self.fake.summary()

    def open_report(self, *, user: str = ALICE, channel: str = CH) -> dict[str, Any]:
        before = len(self.fake.opened_views())
        self.command("", user=user, channel=channel)
        views = self.fake.opened_views()
        assert len(views) == before + 1, self.fake.summary()
        return views[-1]

    def submit(self, view: dict[str, Any], values: dict[str, dict[str, Any]], *, user: str = ALICE) -> Any:
        res = self.post(interaction_body(view_submission_payload(user, view, values)))
        assert res.status_code == 200, (res.status_code, res.get_data(as_text=True))
        self.settle()
        return res

    def report(self, figures: dict[str, Any], *, quarter: str | None = Q1_2026, user: str = ALICE,
               channel: str = CH) -> Any:
        """Open the report modal with /kpi and submit it with these figures (the rest left blank)."""
        view = self.open_report(user=user, channel=channel)
        return self.submit(view, in_view(view, form_values(self.catalog, figures, quarter)), user=user)

    def click(self, user: str, message: dict[str, Any], action_id: str, value: str) -> Any:
        return self.ok(interaction_body(block_actions_payload(user, action_id, value, message=message)))

    def event(self, event: dict[str, Any], *, event_id: str | None = None, retry_num: int | None = None) -> Any:
        return self.ok(event_body(event, event_id=event_id), retry_num=retry_num)

    # ---- what happened --------------------------------------------------------------------------
    def channel_messages(self, channel: str = CH) -> list[dict[str, Any]]:
        return self.fake.messages(channel)

    @contextlib.contextmanager
    def worker_paused(self) -> Iterator[None]:
        """Nothing is delivered inside (as with only the Procfile's web: running): jobs stay queued."""
        saved, self.worker = self.worker, None
        try:
            yield
        finally:
            self.worker = saved

    def team_jobs(self, channel: str = CH) -> list[Job]:
        """The jobs still in a team's mailbox (not yet delivered), oldest first."""
        raw = self.r.hgetall(jobs.mailbox(TeamRef(WS, channel).tag[1:-1]))
        return sorted((Job.from_json(v) for v in raw.values()), key=lambda j: (j.received, j.id))

    def team_posts(self, channel: str = CH) -> list[dict[str, Any]]:
        """The KPI result posts delivered to a team's channel, oldest first (the fake checks each
        against Slack's limits as it receives it)."""
        return [m for m in self.channel_messages(channel) if str(m.get("text", "")).startswith("CRM KPI")]

    def dms(self, user: str) -> list[dict[str, Any]]:
        return self.fake.messages(dm_channel_id(user))

    def ephemerals(self, channel: str = CH, user: str | None = None) -> list[str]:
        return [m["text"] for m in self.fake.ephemerals(channel) if user is None or m["user"] == user]

    def conv(self, user: str) -> Conv:
        return Conv.from_json(self.r.get(keys.conv(Subject("slack", f"{WS}.{user}"))))

    def team_keys(self, channel: str = CH) -> list[str]:
        tag = TeamRef(WS, channel).tag  # braces are not special in Redis glob patterns
        return sorted(k.decode() for k in self.r.scan_iter(match=f"crmbot:{tag}:*"))

    def pending(self) -> int:
        """Jobs not yet delivered, in every mailbox (parked ones are not pending)."""
        return sum(not Job.from_json(v).parked for k in self.r.scan_iter(match="crmbot:{*}:out")
                   for v in self.r.hvals(k))

    def deliver(self) -> int:
        """What the worker does now: attempts made."""
        assert self.worker is not None
        return self.worker.drain()


def form_values(catalog: Catalog, figures: dict[str, Any], quarter: str | None = Q1_2026,
                omit: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """The modal's state as Slack sends it: every input block present, blanks as None."""
    values: dict[str, dict[str, Any]] = {}
    if quarter is not None:
        values["quarter"] = {"q": quarter}
    for ind in catalog.indicators:
        if ind.key in omit or ind.retired:  # a retired indicator has no input in the form
            continue
        raw = figures.get(ind.key)
        values[f"ind:{ind.key}"] = {ind.key: None if raw is None else str(raw)}
    unknown = set(figures) - {ind.key for ind in catalog.indicators}
    assert not unknown, f"test names unknown indicators {unknown}"
    return values


def in_view(view: dict[str, Any], values: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Only the inputs the modal has, as Slack sends them (an owner's form lacks the other areas)."""
    blocks = {b.get("block_id") for b in view["blocks"] if b.get("type") == "input"}
    return {k: v for k, v in values.items() if k in blocks}


def fields_of(message: dict[str, Any]) -> list[str]:
    """The per-area lines of a KPI result message."""
    section = next(b for b in message["blocks"] if b["type"] == "section" and "fields" in b)
    return [f["text"] for f in section["fields"]]


def sections_of(message: dict[str, Any]) -> list[str]:
    return [b["text"]["text"] for b in message["blocks"] if b["type"] == "section" and "text" in b]


def context_of(message: dict[str, Any]) -> list[str]:
    return [e["text"] for b in message["blocks"] if b["type"] == "context" for e in b["elements"]]


def area_line(name: str, score: float, change: str = "", *, reported: int, total: int) -> str:
    """An area of a result post: its bar, score, change, and how many of its figures were reported."""
    filled = int(score + 0.5)  # round half up, like the scores themselves
    coverage = txt("coverage", reported=reported, total=total)
    return f"*{name}*\n`{'▰' * filled}{'▱' * (10 - filled)}` {score:.1f}/10{change}\n{coverage}"


def slack_config(redis_url: str, fake: FakeSlackApi, **changes: Any) -> Config:
    return Config(
        redis_url=redis_url,
        slack_signing_secret=SECRET,
        slack_bot_token=fake.bot_token or TOKEN,
        slack_api_url=fake.base_url,
    ).with_(**changes)


@pytest.fixture(scope="session")
def fake_slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def fake_slack(fake_slack_server: FakeSlackApi) -> Iterator[FakeSlackApi]:
    fake_slack_server.reset()
    yield fake_slack_server


@pytest.fixture
def slack_env(r: redis.Redis, redis_url: str, fake_slack: FakeSlackApi, clock: FakeClock) -> Iterator[SlackEnv]:
    config = slack_config(redis_url, fake_slack)
    clock.t = START
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    env = SlackEnv(svc, create_app(services=svc).test_client(), fake_slack, clock, r, worker)
    env.instrument()
    bolt_log = logging.getLogger("crmbot.slack.bolt")
    bolt_log.addHandler(env.errors)
    try:
        yield env
        env.settle()
        fake_slack.assert_contract_ok()  # every view and message the bot sent passes slack_sdk's models
        if not env.listener_errors_expected:
            assert not env.errors.records, "a listener crashed: " + "; ".join(
                f"{r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else r.getMessage() for r in env.errors.records
            )
    finally:
        bolt_log.removeHandler(env.errors)
        env.executor.shutdown(wait=True)
        worker.close()


# Figures used across the tests and their scores by hand (kpi.toml defaults):
#   active_members 80 (target 80, gap)          -> 10 |
#   updates_per_member 10 (20, ratio)           -> 5  | engagement 7.5 (2 of 3 figures)
#   complete_records 92 (95, gap step 5)        -> 8  | data quality 8.0 (1 of 2)
#   satisfaction_score 4.2 (4.2, scale floor 1) -> 10 | satisfaction 10.0 (1 of 3)
#   repeat_sales_growth -3 (10, gap step 5)     -> 4  |
#   f2_rate 15 (25, ratio)                      -> 6  | ROI 5.0 (2 of 6)
#   report_time_saved 25 (50, gap step 10)      -> 4  |
#   entry_time_saved 10 (30, gap step 10)       -> 6  | efficiency 5.0 (2 of 2)
#   overall (7.5 + 8 + 10 + 5 + 5) / 5 = 7.1; 8 of 16 figures; weakest: ROI (ties with efficiency, ROI
#   comes first), pulled down by repeat sales growth, -3% against a target of 10% (4/10)
BASE = {
    "active_members": "80",
    "updates_per_member": "10",
    "complete_records": "92",
    "satisfaction_score": "4.2",
    "repeat_sales_growth": "-3",
    "f2_rate": "15",
    "report_time_saved": "25",
    "entry_time_saved": "10",
}
# figures per area in the catalog, and of them reported in BASE
TOTALS = {"engagement": 3, "data_quality": 2, "satisfaction": 3, "roi": 6, "efficiency": 2}
BASE_REPORTED = {"engagement": 2, "data_quality": 1, "satisfaction": 1, "roi": 2, "efficiency": 2}
BASE_STORED = {k: float(v) for k, v in BASE.items()}


def area_names(env: SlackEnv) -> dict[str, str]:
    return {a.key: env.catalog.name(a.key, LOCALE) for a in env.catalog.areas}

