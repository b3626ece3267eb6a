from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from bot.app import Services, build_services, build_worker, create_app
from bot.config import Config
from bot.worker import WorkerThread
from tests.bot.line.helpers import SECRET, TOKEN, LineUser
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi


@pytest.fixture(scope="session")
def fake_line_server() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as fake:
        yield fake


@pytest.fixture
def fake_line(fake_line_server: FakeLineApi) -> Iterator[FakeLineApi]:
    fake_line_server.reset()
    yield fake_line_server
    fake_line_server.assert_contract_ok()


@dataclass
class LineEnv:
    svc: Services
    http: Any
    fake: FakeLineApi
    clock: FakeClock
    r: redis.Redis
    worker: WorkerThread

    def user(self, user_id: str | None = None) -> LineUser:
        return LineUser(self.http, self.fake, self.clock, user_id)

    def settle(self) -> int:
        """Let the worker deliver everything that can go now (as `crmbot worker` would); returns
        the number of attempts it made."""
        return self.worker.drain()


def line_config(redis_url: str, fake: FakeLineApi, **changes: Any) -> Config:
    return Config(
        redis_url=redis_url,
        line_channel_secret=SECRET,
        line_channel_access_token=TOKEN,
        line_api_host=fake.base_url,
    ).with_(**changes)


def start_worker(config: Config, svc: Services, clock: Any, faults: Any = None) -> WorkerThread:
    """The worker as `crmbot worker` builds it, on the test's clock, driven by drain()."""
    return WorkerThread(lambda: build_worker(config, svc.script, clock=clock, faults=faults))


@pytest.fixture
def line_env(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line)
    svc = build_services(config, clock=clock)
    app = create_app(services=svc)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, app.test_client(), fake_line, clock, r, worker)
    worker.close()
