"""The console on a real Redis, through Flask's test client; the clock is injected."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from bot.app import Services, build_services, create_app
from bot.config import Config
from tests.conftest import FakeClock

PASSWORD = "correct horse battery"  # the shared password (CRMBOT_CONSOLE_PASSWORD)
TOKEN = "tools-token-0123456789abcdef"
ADMIN_EMAIL = "admin@example.jp"
ADMIN_PASSWORD = "admin password 1"
SECRET_KEY = "s" * 40
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF field in the page"
    return found.group(1)


@dataclass
class Console:
    svc: Services
    app: Any
    http: FlaskClient
    clock: FakeClock
    r: redis.Redis

    def client(self) -> FlaskClient:
        """Another browser (its own cookies)."""
        return self.app.test_client()

    def login(self, http: FlaskClient | None = None, password: str = PASSWORD) -> Any:
        """The shared password's login (before any operator exists)."""
        http = http or self.http
        token = csrf_of(http.get("/console/login").get_data(as_text=True))
        return http.post("/console/login", data={"password": password, "csrf_token": token})

    def ref(self, lead_id: str) -> str:
        """The lead's opaque id in the console's URLs (bot/console/refs.py)."""
        from bot.console import refs

        with self.app.test_request_context():
            return refs.ref(lead_id)

    def add_operator(self, email: str, name: str, role: str = "operator", password: str = ADMIN_PASSWORD) -> Any:
        from bot.console.operators import OperatorStore

        return OperatorStore(self.r, self.clock).create(email, name, role, password)

    def login_as(self, email: str, password: str = ADMIN_PASSWORD, code: str = "",
                 http: FlaskClient | None = None) -> Any:
        """An operator's login (e-mail, password, TOTP code)."""
        http = http or self.http
        token = csrf_of(http.get("/console/login").get_data(as_text=True))
        return http.post("/console/login", data={"email": email, "password": password, "code": code,
                                                  "csrf_token": token})

    def csrf(self, path: str = "/console/delivery", http: FlaskClient | None = None) -> str:
        return csrf_of((http or self.http).get(path).get_data(as_text=True))


def console_config(redis_url: str, data_dir: Path, **changes: Any) -> Config:
    """The console's test config. Its clock stands still, so the figures' cache is off (every figure read
    when asked): tests/bot/console/test_figures_cache.py turns it on to test it."""
    return Config(redis_url=redis_url, console_password=PASSWORD, console_token=TOKEN, secret_key=SECRET_KEY,
                  data_dir=data_dir, console_figures_seconds=0.0).with_(**changes)


def make_console(config: Config, r: redis.Redis, clock: FakeClock) -> Console:
    svc = build_services(config, clock=clock)
    app = create_app(services=svc)
    return Console(svc, app, app.test_client(), clock, r)


@pytest.fixture(autouse=True)
def quick_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2id with the least work (the same code, the same format): a login here costs microseconds, not
    the 64 MiB pass a real one does (tests/bot/console/test_accounts.py checks the real parameters)."""
    from argon2 import PasswordHasher

    from bot.console import operators

    monkeypatch.setattr(operators, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def console(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[Console]:
    yield make_console(console_config(redis_url, tmp_path), r, clock)


@pytest.fixture
def logged_in(console: Console) -> Console:
    """Logged in with the shared password (no operator exists)."""
    res = console.login()
    assert res.status_code == 302, res.get_data(as_text=True)
    return console


@pytest.fixture
def admin(console: Console) -> Console:
    """An admin (the only operator), logged in with their own e-mail and password."""
    console.add_operator(ADMIN_EMAIL, "Admin", "admin")
    res = console.login_as(ADMIN_EMAIL)
    assert res.status_code == 302, res.get_data(as_text=True)
    return console


# ---- with LINE (the fake LINE API) and a worker -------------------------------------------------------

from tests.bot.line.conftest import line_config, start_worker  # noqa: E402
from tests.bot.line.helpers import TOKEN as LINE_TOKEN  # noqa: E402
from tests.bot.line.helpers import LineUser  # noqa: E402
from tests.fakes.line_api import FakeLineApi  # noqa: E402


@pytest.fixture(scope="session")
def console_fake_line() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=LINE_TOKEN) as fake:
        yield fake


@dataclass
class LineConsole(Console):
    fake: FakeLineApi = None  # type: ignore[assignment]
    worker: Any = None

    def user(self, user_id: str | None = None) -> LineUser:
        return LineUser(self.http, self.fake, self.clock, user_id)

    def settle(self) -> int:
        return int(self.worker.drain())


@contextmanager
def make_line_console(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path, fake_line: FakeLineApi,
                      **changes: Any) -> Iterator[LineConsole]:
    """The console over a LINE-enabled app and a worker (``changes``: configuration to differ)."""
    fake_line.reset()
    config = line_config(redis_url, fake_line).with_(console_password=PASSWORD, console_token=TOKEN,
                                                     secret_key=SECRET_KEY, data_dir=tmp_path,
                                                     **{"console_figures_seconds": 0.0, **changes})  # as console_config
    svc = build_services(config, clock=clock)
    app = create_app(services=svc)
    worker = start_worker(config, svc, clock)
    try:
        yield LineConsole(svc, app, app.test_client(), clock, r, fake_line, worker)
    finally:
        worker.close()
    fake_line.assert_contract_ok()


@pytest.fixture
def line_console(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path,
                 console_fake_line: FakeLineApi) -> Iterator[LineConsole]:
    with make_line_console(r, redis_url, clock, tmp_path, console_fake_line) as lc:
        yield lc
