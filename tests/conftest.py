"""Shared fixtures: a real Redis server started by the suite, an injectable clock, the fake LINE API.

The suite keeps to itself (see tests/isolation.py):

* At start-up it drops REDIS_URL, REDIS_CLUSTER and every CRMBOT_*, LINE_* and SLACK_* variable from
  the environment, so neither the tests nor a ``crmbot`` process they start can reach the developer's
  own Redis, data or accounts; it always talks to a redis-server it started itself.
* Everything temporary lives under one session dir (``crmbot-tests-*`` in the system temp dir):
  pytest's ``tmp_path`` base (unless ``--basetemp`` is given), ``$TMPDIR`` for the session, and
  ``$XDG_DATA_HOME`` (where an unconfigured ``crmbot`` would keep its embedded Redis).
* At the end, every process and temp dir the suite started must be gone. Anything left is killed or
  removed, listed, and fails the run.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.isolation import REGISTRY, scrub_environment
from tests.redis_server import RedisServer


class FakeClock:
    """Injected time: tests move it explicitly; nothing sleeps on the wall clock."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@dataclass
class _SessionDirs:
    root: Path | None = None
    saved_env: dict[str, str | None] = field(default_factory=dict)
    saved_tempdir: str | None = None


_session = _SessionDirs()


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    scrub_environment(os.environ)
    root = Path(tempfile.mkdtemp(prefix="crmbot-tests-")).resolve()
    _session.root = root
    REGISTRY.watch(root)
    for sub in ("tmp", "data"):
        (root / sub).mkdir()
    if config.option.basetemp:
        REGISTRY.watch(config.option.basetemp)  # the developer's choice: kept, but its processes are ours
    else:
        config.option.basetemp = str(root / "pytest")
    _session.saved_env = {name: os.environ.get(name) for name in ("TMPDIR", "XDG_DATA_HOME")}
    _session.saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = tempfile.tempdir = str(root / "tmp")
    os.environ["XDG_DATA_HOME"] = str(root / "data")


def _remove_session_dir() -> None:
    for name, value in _session.saved_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    tempfile.tempdir = _session.saved_tempdir
    if _session.root is not None:
        shutil.rmtree(_session.root, ignore_errors=True)
        _session.root = None


def pytest_unconfigure(config: pytest.Config) -> None:
    _remove_session_dir()  # when no session ran (--help): nothing to check, the dir still goes


@pytest.hookimpl(trylast=True)  # after session-scoped fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    root = _session.root
    if root is None:
        return
    left = REGISTRY.sweep()
    tmp = root / "tmp"
    left += [f"temp file or dir {p} not removed" for p in sorted(tmp.iterdir())] if tmp.is_dir() else []
    _remove_session_dir()
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["the suite left these behind (now killed or removed; the run fails):", *(f"  {x}" for x in left)]
    if reporter is not None:
        reporter.write("\n")  # after the progress line
        reporter.write_sep("=", "leftovers", red=True, bold=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines), file=sys.stderr)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def session_root() -> Path | None:
    """The session's dir (None outside a test session)."""
    return _session.root


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """Always a redis-server of the suite's own: never one named in the environment."""
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def r(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
