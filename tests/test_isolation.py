"""The suite keeps to itself: it scrubs the environment, talks only to its own Redis, and fails when
a process or temp dir it started outlives it (tests/isolation.py, the hooks in tests/conftest.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import redis

from tests.conftest import session_root
from tests.isolation import REGISTRY, Registry, alive, proc_info, scrub_environment, scrubbed
from tests.redis_server import redis_binary

ROOT = Path(__file__).resolve().parents[1]


def test_scrubbing_drops_every_name_that_could_reach_a_real_redis_or_account() -> None:
    env = {
        "REDIS_URL": "redis://prod.example:6379/0", "REDIS_CLUSTER": "1", "CRMBOT_DATA_DIR": "/home/me/crm",
        "CRMBOT_LOCALE": "en", "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t",
        "SLACK_BOT_TOKEN": "xoxb-real", "SLACK_SIGNING_SECRET": "s",
        # kept: test knobs and everything else
        "LINE_OPENAPI_DIR": "/specs", "REDIS_SERVER_BIN": "/usr/bin/redis-server", "PATH": "/usr/bin", "HOME": "/h",
    }
    dropped = scrub_environment(env)
    assert dropped == sorted(["REDIS_URL", "REDIS_CLUSTER", "CRMBOT_DATA_DIR", "CRMBOT_LOCALE", "LINE_CHANNEL_SECRET",
                              "LINE_CHANNEL_ACCESS_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"])
    assert env == {"LINE_OPENAPI_DIR": "/specs", "REDIS_SERVER_BIN": "/usr/bin/redis-server", "PATH": "/usr/bin",
                   "HOME": "/h"}


def test_the_session_environment_names_no_redis_and_no_account() -> None:
    assert "REDIS_URL" not in os.environ
    assert [name for name in os.environ if scrubbed(name)] == []
    # where an unconfigured crmbot would keep its embedded Redis, and where temp files go: the session's dir
    root = session_root()
    assert root is not None
    assert Path(os.environ["XDG_DATA_HOME"]).is_relative_to(root)
    assert Path(tempfile.gettempdir()).is_relative_to(root)


def test_the_suite_redis_is_a_server_of_its_own(r: redis.Redis, redis_url: str) -> None:
    """The server behind ``redis_url`` runs in a temp dir the suite made (and will remove)."""
    raw = r.config_get("dir")["dir"]
    data_dir = Path(raw.decode() if isinstance(raw, bytes) else raw).resolve()
    assert data_dir in REGISTRY.dirs
    assert redis_url.startswith("redis://127.0.0.1:")


def test_tmp_path_lives_where_the_suite_cleans_up(tmp_path: Path) -> None:
    assert any(tmp_path.resolve().is_relative_to(watched) for watched in REGISTRY.watched)


def _wait_until_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while alive(proc_info(pid)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)  # polling for a SIGKILLed process to vanish, bounded by the deadline
    return True


def test_the_checker_finds_kills_and_removes_what_a_test_left() -> None:
    """A registry of its own (not the session's): a tracked child still running, a child forked by a
    tracked group leader that has exited, redis-servers found only by where they run or what they
    name, and a tracked temp dir, are all reported, killed and removed; nothing else is touched."""
    reg = Registry()
    d = Path(reg.mkdtemp("crmbot-leftover-test-"))
    started: list[subprocess.Popen[bytes]] = []
    orphan = 0
    try:
        # found by its working directory: a redis-server run in our dir (it listens on a relative socket)
        in_dir = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", "in-dir.sock", "--save", "",
                                   "--appendonly", "no"], cwd=d, stdout=subprocess.DEVNULL)
        started.append(in_dir)
        # found by its command line: runs in /, names a socket in our dir
        naming = subprocess.Popen([redis_binary(), "--port", "0", "--unixsocket", str(d / "named.sock"),
                                   "--save", "", "--appendonly", "no"], cwd="/", stdout=subprocess.DEVNULL)
        started.append(naming)
        # a tracked child that never exits on its own
        blocker = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        started.append(blocker)
        reg.track_process(blocker, "the blocker")
        # a tracked group leader that forks a child and exits: the child stays in the leader's group
        leader = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys; "
             "p = subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()'], "
             "stdout=subprocess.DEVNULL); print(p.pid)"],
            stdout=subprocess.PIPE, start_new_session=True)
        started.append(leader)
        reg.track_process(leader, "the leader", group=True)
        orphan = int(leader.communicate(timeout=30)[0])
        for sock in (d / "in-dir.sock", d / "named.sock"):  # both servers are up (and have chdir'ed)
            deadline = time.monotonic() + 10
            while not sock.exists():
                assert time.monotonic() < deadline, f"redis-server never made {sock}"
                time.sleep(0.01)  # polling a starting server, bounded by the deadline

        found = reg.leftover_processes()
        assert sorted(pid for pid, _ in found) == sorted([in_dir.pid, naming.pid, blocker.pid, orphan])
        text = dict(found)
        assert "the blocker" in text[blocker.pid] and "forked by the leader" in text[orphan]
        assert f"in {d}" in text[in_dir.pid] and str(d / "named.sock") in text[naming.pid]
        assert reg.leftover_dirs() == [d.resolve()]

        report = reg.sweep()
        assert len(report) == 5 and f"temp dir {d.resolve()} not removed" in report
        assert not d.exists()
        assert blocker.returncode == -signal.SIGKILL  # killed and reaped by the sweep
        assert in_dir.wait(timeout=10) == -signal.SIGKILL and naming.wait(timeout=10) == -signal.SIGKILL
        assert _wait_until_gone(orphan)
        assert reg.leftovers() == []
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        info = proc_info(orphan) if orphan else None
        if alive(info) and info is not None and info.pgid == leader.pid:
            os.kill(orphan, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


LEAKY_TEST = """
    import subprocess, sys
    from pathlib import Path
    from tests.isolation import mkdtemp, track_process

    def test_leaks():
        Path(mkdtemp("leaked-"))
        proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        track_process(proc, "the leaked child")
        Path("leaked.pid").write_text(str(proc.pid))
        assert proc.poll() is None
"""

TIDY_TEST = """
    from tests.redis_server import RedisServer

    def test_tidy():
        server = RedisServer().start()
        server.stop()
        assert server.proc is None
"""


def _run_session(tmp_path: Path, test: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A pytest session of its own, with this suite's hooks, running one test file (``args``: more options,
    e.g. ``-n 2`` for two pytest-xdist workers)."""
    (tmp_path / "conftest.py").write_text("from tests.conftest import (  # noqa: F401\n"
                                          "    pytest_configure, pytest_configure_node, pytest_sessionfinish,\n"
                                          "    pytest_testnodedown, pytest_unconfigure, redis_url)\n")
    (tmp_path / "test_one.py").write_text(textwrap.dedent(test))
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, "test_one.py"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_a_session_that_leaves_something_behind_fails_naming_it(tmp_path: Path) -> None:
    run = _run_session(tmp_path, LEAKY_TEST)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "1 passed" in run.stdout  # the test itself passed: the leftovers fail the run
    assert "the leaked child" in run.stdout and "leaked-" in run.stdout
    assert _wait_until_gone(int((tmp_path / "leaked.pid").read_text()))


def test_a_tidy_session_passes(tmp_path: Path) -> None:
    run = _run_session(tmp_path, TIDY_TEST)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "leftovers" not in run.stdout


XDIST_TEST = """
    import os, subprocess, sys, tempfile
    from pathlib import Path
    import redis
    from tests.conftest import session_root
    from tests.isolation import mkdtemp, track_process

    def test_where(redis_url):
        r = redis.Redis.from_url(redis_url)
        raw = r.config_get("dir")["dir"]
        worker = os.environ["PYTEST_XDIST_WORKER"]
        Path(f"{worker}.txt").write_text(f"{session_root()} {raw} {tempfile.gettempdir()}")
        r.close()

    def test_leaks():
        worker = os.environ["PYTEST_XDIST_WORKER"]
        Path(mkdtemp(f"leaked-{worker}-"))
        proc = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
        track_process(proc, f"the child {worker} leaked")
        Path(f"leaked-{worker}.pid").write_text(str(proc.pid))
"""


def test_under_xdist_each_worker_is_a_session_of_its_own_and_leftovers_fail_the_run(tmp_path: Path) -> None:
    """Two pytest-xdist workers, each running both tests: each has its own session dir inside the
    controller's (``<root>/gw0``) and its own redis-server; what each leaves behind it sweeps, and the
    controller lists it and fails the run (the suite itself, passing under xdist, is the tidy case)."""
    run = _run_session(tmp_path, XDIST_TEST, "-n", "2", "--dist", "each")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "4 passed" in run.stdout  # the tests passed: the leftovers fail the run
    seen = {w: (tmp_path / f"{w}.txt").read_text().split() for w in ("gw0", "gw1")}
    assert len({v[0] for v in seen.values()}) == 2 and len({v[1] for v in seen.values()}) == 2  # nothing shared
    for worker, (root, redis_dir, tmp) in seen.items():
        assert Path(root).name == worker and Path(root).parent.name.startswith("crmbot-tests-")
        assert Path(redis_dir).is_relative_to(tmp) and Path(tmp).is_relative_to(root)
        assert not Path(root).exists()  # removed at the worker's end
        assert f"the child {worker} leaked" in run.stdout and f"(worker {worker})" in run.stdout
        assert f"leaked-{worker}-" in run.stdout
        assert _wait_until_gone(int((tmp_path / f"leaked-{worker}.pid").read_text()))
