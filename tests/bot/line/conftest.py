from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from bot.app import Services, build_services, create_app
from bot.config import Config
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

    def user(self, user_id: str | None = None) -> LineUser:
        return LineUser(self.http, self.fake, self.clock, user_id)

    def settle(self) -> None:
        """Wait (bounded) for this process's background sends to finish."""
        self.svc.outbox.drain(timeout=15)


def line_config(redis_url: str, fake: FakeLineApi, **changes: Any) -> Config:
    return Config(
        redis_url=redis_url,
        line_channel_secret=SECRET,
        line_channel_access_token=TOKEN,
        line_api_host=fake.base_url,
    ).with_(**changes)


@pytest.fixture
def line_env(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    svc = build_services(line_config(redis_url, fake_line), clock=clock)
    app = create_app(services=svc)
    yield LineEnv(svc, app.test_client(), fake_line, clock, r)
    svc.outbox.close()
