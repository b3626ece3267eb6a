from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.app import Services, build_reminders, build_services, build_worker
from bot.config import Config
from bot.reminders import Reminders, Summary
from bot.worker import WorkerThread
from conversations.keys import Subject, TeamRef
from conversations.machine import DONE, Conv
from conversations.store import RedisStore
from conversations.teams import TeamStore
from tests.bot.line.helpers import SECRET, TOKEN
from tests.conftest import FakeClock
from tests.fakes.line_api import MULTICAST, FakeLineApi
from tests.fakes.slack_api import FakeSlackApi

SLACK_TOKEN = "xoxb-test-token"
JST = ZoneInfo("Asia/Tokyo")


def at(text: str, tz: ZoneInfo = JST) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


@pytest.fixture(scope="session")
def fakes() -> Iterator[tuple[FakeLineApi, FakeSlackApi]]:
    with FakeLineApi(access_token=TOKEN) as line, FakeSlackApi(bot_token=SLACK_TOKEN) as slack:
        yield line, slack


class Delivering:
    """A clock's reminder pass followed by what `crmbot worker` then does: deliver what it queued."""

    def __init__(self, reminders: Reminders, worker: WorkerThread) -> None:
        self.inner = reminders
        self.worker = worker

    def run(self, now: float, *, dry_run: bool = False) -> Summary:
        summary = self.inner.run(now, dry_run=dry_run)
        self.worker.drain()
        return summary


@dataclass
class World:
    r: redis.Redis
    redis_url: str
    clock: FakeClock
    line: FakeLineApi
    slack: FakeSlackApi
    svc: Services
    reminders: Delivering
    teams: TeamStore
    worker: WorkerThread

    def config(self, **changes: Any) -> Config:
        return Config(
            redis_url=self.redis_url,
            line_channel_secret=SECRET,
            line_channel_access_token=TOKEN,
            line_api_host=self.line.base_url,
            slack_signing_secret="slack-secret",
            slack_bot_token=SLACK_TOKEN,
            slack_api_url=self.slack.base_url,
        ).with_(**changes)

    def deliver(self) -> int:
        """The worker delivers what is due now; returns the attempts it made."""
        return self.worker.drain()

    def another_clock(self, **changes: Any) -> tuple[Services, Delivering]:
        """A second clock process: its own services over the same Redis and the same fakes (the
        worker delivers for both, as it does in production)."""
        svc = build_services(self.config(**changes), clock=self.clock)
        return svc, Delivering(build_reminders(svc), self.worker)

    def team(self, channel: str, name: str = "", tz: str = "Asia/Tokyo", workspace: str = "T1") -> TeamRef:
        ref = TeamRef(workspace, channel)
        self.teams.register(ref, name or f"team {channel}", tz, "UADMIN", self.clock())
        return ref

    def line_user(self, user_id: str, answers: str = "AAAAAAABCD", *, remind: bool = True,
                  finished: float | None = None) -> Subject:
        """A LINE user who finished a diagnosis (and opted in, or not), written as the bot writes it."""
        subject = Subject("line", user_id)
        store = RedisStore(self.r)
        snap = store.get(subject, "seed")
        done_at = finished if finished is not None else self.clock() - 90 * 86400
        conv = Conv(state=DONE, sid=1, last=answers, finished=done_at, updated=self.clock(), n=snap.conv.n + 1,
                    remind=remind)
        assert store.update(snap, conv, f"seed-{user_id}-{conv.n}", ttl=0, remind_index=remind) == "ok"
        return subject

    def channel_reminders(self, channel: str) -> list[str]:
        return [m.get("text", "") for m in self.slack.messages(channel)]

    def multicast_recipients(self) -> list[str]:
        users: list[str] = []
        for rec in self.line.recorded(MULTICAST):
            if rec.status == 200:
                users += rec.json["to"]
        return users


@pytest.fixture
def world(r: redis.Redis, redis_url: str, clock: FakeClock, fakes: tuple[FakeLineApi, FakeSlackApi]) -> Iterator[World]:
    line, slack = fakes
    line.reset()
    slack.reset()
    line.quota = None
    w = World(r, redis_url, clock, line, slack, None, None, TeamStore(r), None)  # type: ignore[arg-type]
    w.svc = build_services(w.config(), clock=clock)
    w.worker = WorkerThread(lambda: build_worker(w.config(), w.svc.script, clock=clock))
    w.reminders = Delivering(build_reminders(w.svc), w.worker)
    try:
        yield w
        line.assert_contract_ok()
        slack.assert_contract_ok()
    finally:
        w.worker.close()
