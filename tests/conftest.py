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
* Under pytest-xdist (``-n``, as ``./scripts/test`` runs the whole suite) each worker process is a session
  of its own: its own session dir (inside the controller's), its own redis-server and fake servers (session
  fixtures), its own check at the end; the controller lists what any worker left and fails the run.
* ``pytest -m fast`` runs the unit tests: a test marked fast may not use Redis, start a process or open a
  server (checked below).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import settings as hypothesis_settings

from tests.isolation import REGISTRY, scrub_environment
from tests.redis_server import RedisServer
from tests.xdist_plan import make_scheduler, slow_first

# No example may fail for taking long: Hypothesis' per-example deadline (200 ms) is a timing threshold, and
# on a loaded machine (a shared CI runner, several suites at once) a correct example can take longer.
hypothesis_settings.register_profile("crmbot", deadline=None)
hypothesis_settings.load_profile("crmbot")


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
    # under pytest-xdist, in the controller: what each worker left behind, as it reported it
    workers_left: list[str] = field(default_factory=list)


_session = _SessionDirs()


def worker_id(config: pytest.Config) -> str | None:
    """This process's pytest-xdist worker id (``gw0`` ...), or None in the controller or a run without xdist."""
    workerinput = getattr(config, "workerinput", None)
    return None if workerinput is None else str(workerinput["workerid"])


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads --basetemp
def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist every worker is a pytest session of its own (own session fixtures: its own Redis server,
    # fake APIs ...) with its own session dir, inside the controller's, and its own registry: it sweeps what it
    # started and reports what it found to the controller, which fails the run.
    scrub_environment(os.environ)
    worker = worker_id(config)
    if worker is None:
        root = Path(tempfile.mkdtemp(prefix="crmbot-tests-")).resolve()
    else:  # a short path: a unix socket's path (a browser's, a Redis's) holds at most 107 bytes
        root = Path(getattr(config, "workerinput", {})[ROOT_KEY]) / worker
        root.mkdir()
    _session.root = root
    REGISTRY.watch(root)
    for sub in ("tmp", "data"):
        (root / sub).mkdir()
    if config.option.basetemp:
        # the developer's choice (kept, but its processes are ours), or a worker's part of the controller's
        REGISTRY.watch(config.option.basetemp)
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


LEFTOVERS_KEY = "crmbot_leftovers"  # a worker's report to the controller, in its workeroutput
ROOT_KEY = "crmbot_session_root"  # the controller's session dir, given to each worker in its workerinput
PLANNED_KEY = "crmbot_planned"  # --dist loadfile: the workers order the files as tests/xdist_plan.py says


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist, in the controller: a worker is starting; its session dir will be ``<ours>/<worker id>``."""
    node.workerinput[ROOT_KEY] = str(_session.root)
    node.workerinput[PLANNED_KEY] = node.config.getoption("dist", None) == "loadfile"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """pytest-xdist, in the controller: ``--dist loadfile`` as planned in tests/xdist_plan.py."""
    return make_scheduler(config, log) if config.getoption("dist", None) == "loadfile" else None


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, in the controller: a worker has finished; keep what it left behind (it has swept it)."""
    workeroutput = getattr(node, "workeroutput", None) or {}
    worker = workeroutput.get("workerid") or getattr(getattr(node, "gateway", None), "id", "a worker")
    _session.workers_left += [f"{x} (worker {worker})" for x in workeroutput.get(LEFTOVERS_KEY, [])]


@pytest.hookimpl(trylast=True)  # after session-scoped fixtures are torn down
def pytest_sessionfinish(session: pytest.Session) -> None:
    root = _session.root
    if root is None:
        return
    left = REGISTRY.sweep()
    tmp = root / "tmp"
    left += [f"temp file or dir {p} not removed" for p in sorted(tmp.iterdir())] if tmp.is_dir() else []
    _remove_session_dir()
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: the controller reports it and fails the run
        workeroutput[LEFTOVERS_KEY] = left
        workeroutput["workerid"] = worker_id(session.config)
        return
    left = _session.workers_left + left
    _session.workers_left = []
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


# ---- the fast marker --------------------------------------------------------------------------------------
# ``pytest -m fast``: the unit tests that run in seconds. A test (or module) marked fast may not use the
# suite's Redis, start a process or open a listening socket: each is refused while it runs, so the mark stays
# true as the tests change.
SLOW_FIXTURES = frozenset({"redis_url", "r"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if getattr(config, "workerinput", {}).get(PLANNED_KEY):
        slow_first(items)  # the slow files are handed out first (tests/xdist_plan.py)
    wrong = [f"{item.nodeid} uses {', '.join(sorted(SLOW_FIXTURES & set(item.fixturenames)))}" for item in items
             if item.get_closest_marker("fast") and SLOW_FIXTURES & set(getattr(item, "fixturenames", ()))]
    if wrong:
        raise pytest.UsageError("tests marked fast need no Redis (drop the mark):\n  " + "\n  ".join(wrong))


class SlowInFastTest(AssertionError):
    """A test marked fast started a process or opened a server."""


@pytest.fixture(autouse=True)
def _fast_tests_start_nothing(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("fast") is None:
        yield
        return

    def refuse(what: str) -> Any:
        def refused(*_args: Any, **_kwargs: Any) -> Any:
            raise SlowInFastTest(f"{request.node.nodeid} is marked fast but {what} (drop the mark)")
        return refused

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(subprocess.Popen, "__init__", refuse("starts a process"))
        mp.setattr(socket.socket, "listen", refuse("opens a server"))
        yield


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
