"""Exactly one embedded Redis per data directory: real processes, a temp data dir each.

Every test's data dir is removed at the end and every redis-server working in it is ended by pid
(:func:`tests.redis_server.stop_embedded`), whether the test passed or not.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio

from bot.config import Config
from bot.embedded_redis import AOF, DBFILENAME, PIDFILE, SOCKET, start_or_connect
from bot.redis_conn import connect, redis_url_of
from conversations.errors import ConfigError
from tests.redis_server import embedded_pids, free_port, stop_embedded, wait_gone

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]

# A process that connects through the product's own connect() when told to ("go" on stdin), writes
# its key, waits (with a deadline) until it sees the keys of all N processes, then prints what it saw.
SHARER = r"""
import os, sys, time
from bot.config import Config
from bot.redis_conn import connect
name, n = sys.argv[1], int(sys.argv[2])
config = Config.from_env()
print("ready", flush=True)
sys.stdin.readline()
r = connect(config)
r.set("who:" + name, os.getpid())
deadline = time.monotonic() + 30
while len(r.keys("who:*")) < n and time.monotonic() < deadline:
    time.sleep(0.01)
print(" ".join(sorted(k.decode() for k in r.keys("who:*"))))
print(r.info("server")["process_id"], flush=True)
"""

# Connects, writes a key, says so, then waits to be killed.
HOLDER = r"""
import sys
from bot.config import Config
from bot.redis_conn import connect
r = connect(Config.from_env())
r.set("left-behind", "yes")
print(r.info("server")["process_id"], flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def data_dir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="crmbot-emb-"))
    try:
        yield base / "data"
    finally:
        for d in [base, *base.rglob("*")]:
            if d.is_dir():
                stop_embedded(d)
        shutil.rmtree(base, ignore_errors=True)


def env_for(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "REDIS_CLUSTER", "LINE_", "SLACK_"))}
    return env | {"CRMBOT_DATA_DIR": str(data_dir)} | extra


def pidfile_pid(data_dir: Path) -> int:
    return int((data_dir / PIDFILE).read_text().strip())


def start_together(cmds: list[list[str]], env: dict[str, str]) -> list[subprocess.Popen[str]]:
    procs = [subprocess.Popen(c, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in cmds]
    return procs


def finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        outs.append(out)
    return outs


@pytest.mark.parametrize("round_", range(3))
def test_processes_started_at_once_share_one_server(data_dir: Path, round_: int) -> None:
    n = 3
    procs = start_together([[sys.executable, "-c", SHARER, f"p{i}", str(n)] for i in range(n)], env_for(data_dir))
    try:
        for p in procs:  # all imported and waiting: now they race for the server
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        outs = finish(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    everyone = " ".join(f"who:p{i}" for i in range(n))
    server_pids = set()
    for out in outs:
        seen, pid = out.strip().splitlines()
        assert seen == everyone  # each process sees every other's key
        server_pids.add(int(pid))
    assert len(server_pids) == 1  # all talked to the same server...
    assert embedded_pids(data_dir) == server_pids == {pidfile_pid(data_dir)}  # ...the only one for the dir


def test_crmbot_commands_started_at_once_share_one_server(data_dir: Path) -> None:
    env = env_for(data_dir)
    procs = start_together([[str(BIN / "crmbot"), "outbox"],
                            [str(BIN / "crmbot"), "remind", "--now", "2026-04-01T10:00:00+09:00", "--dry-run"],
                            [str(BIN / "crmbot"), "outbox"]], env)
    try:
        outs = finish(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert "0 parked message(s)" in outs[0] and "0 parked message(s)" in outs[2]
    pids = embedded_pids(data_dir)
    assert len(pids) == 1 and pids == {pidfile_pid(data_dir)}


def test_a_server_left_by_a_killed_starter_is_reused(data_dir: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], env=env_for(data_dir), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        server_pid = int(holder.stdout.readline())
    finally:
        holder.kill()  # SIGKILL: no clean-up of any kind in the starter
        holder.wait()
    assert embedded_pids(data_dir) == {server_pid}  # the server outlived its starter
    again = start_or_connect(data_dir)
    assert (again.pid, again.owned) == (server_pid, False)  # reused, not duplicated
    assert again.client().get("left-behind") == b"yes"
    assert embedded_pids(data_dir) == {server_pid}


def test_a_killed_server_leaves_stale_files_and_a_new_one_starts(data_dir: Path) -> None:
    first = start_or_connect(data_dir)
    os.kill(first.pid, signal.SIGKILL)
    assert wait_gone(first.pid)
    assert (data_dir / SOCKET).exists() and pidfile_pid(data_dir) == first.pid  # left behind, stale
    second = start_or_connect(data_dir)
    assert second.owned and second.pid != first.pid
    assert second.client().ping()
    assert embedded_pids(data_dir) == {second.pid} and pidfile_pid(data_dir) == second.pid


def test_a_stale_pidfile_naming_a_live_process_and_a_dead_socket_start_a_new_server(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700)
    (data_dir / PIDFILE).write_text(f"{os.getpid()}\n")  # alive, but no redis-server
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(data_dir / SOCKET))  # a socket file no one listens on
    server = start_or_connect(data_dir)
    assert server.owned and server.pid != os.getpid()
    assert server.client().ping()
    assert embedded_pids(data_dir) == {server.pid} and pidfile_pid(data_dir) == server.pid


def test_data_dir_is_private_and_so_are_the_files(data_dir: Path) -> None:
    data_dir.mkdir()
    data_dir.chmod(0o755)
    (data_dir / AOF).write_bytes(b"")  # e.g. left by an earlier version, world-readable
    (data_dir / AOF).chmod(0o644)
    server = start_or_connect(data_dir)
    client = server.client()
    client.set("k", "v")
    client.save()
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in (AOF, DBFILENAME, PIDFILE, "redis.log", "redis.lock", "redis.server.lock"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    sock = (data_dir / SOCKET).stat()
    assert stat.S_ISSOCK(sock.st_mode) and stat.S_IMODE(sock.st_mode) == 0o700


def test_a_new_nested_data_dir_is_created_0700(data_dir: Path) -> None:
    nested = data_dir / "a" / "b"
    server = start_or_connect(nested)
    assert server.owned and stat.S_IMODE(nested.stat().st_mode) == 0o700


def test_stop_only_by_the_process_that_started_it_and_cleanly(data_dir: Path) -> None:
    mine = start_or_connect(data_dir)
    theirs = start_or_connect(data_dir)
    assert mine.owned and not theirs.owned and mine.pid == theirs.pid
    mine.client().set("kept", "1")
    assert theirs.stop() is False
    assert embedded_pids(data_dir) == {mine.pid}
    assert mine.stop() is True
    assert wait_gone(mine.pid)
    assert not (data_dir / SOCKET).exists() and not (data_dir / PIDFILE).exists()
    assert mine.stop() is False  # once
    after = start_or_connect(data_dir)
    assert after.owned and after.client().get("kept") == b"1"  # the clean shutdown flushed the AOF


def test_no_tcp_port_only_the_socket(data_dir: Path) -> None:
    server = start_or_connect(data_dir)
    assert server.client().config_get("port") == {"port": "0"}
    assert server.url == f"unix://{data_dir.resolve() / SOCKET}"


def test_connect_and_redis_url_of_use_the_embedded_server(data_dir: Path) -> None:
    config = Config(data_dir=data_dir)
    url = redis_url_of(config)
    assert url.startswith("unix://") and url.endswith("/" + SOCKET)
    connect(config).set("sync", "1")

    async def via_asyncio() -> bytes | None:
        client = redis.asyncio.from_url(url)
        try:
            return await client.get("sync")
        finally:
            await client.aclose()

    assert asyncio.run(via_asyncio()) == b"1"
    assert len(embedded_pids(data_dir)) == 1
    assert redis_url_of(Config(redis_url="redis://example.invalid:6379/0", data_dir=data_dir)) == (
        "redis://example.invalid:6379/0"
    )


def test_data_dir_not_writable_names_the_variable(data_dir: Path) -> None:
    data_dir.parent.mkdir(exist_ok=True)
    blocker = data_dir.parent / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=r"CRMBOT_DATA_DIR .*not writable"):
        connect(Config(data_dir=blocker / "data"))


def test_data_dir_too_long_for_a_socket_names_the_variable(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"CRMBOT_DATA_DIR .*too long"):
        connect(Config(data_dir=data_dir / ("x" * 120)))
    assert not (data_dir / ("x" * 120)).exists()


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as res:
                return res.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{url} never answered (exit code {proc.poll()})") from None
            time.sleep(0.05)  # polling a starting server, bounded by the deadline


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_the_server_it_started(data_dir: Path, sig: signal.Signals) -> None:
    port = free_port()
    proc = subprocess.Popen([BIN / "crmbot", "serve"], env=env_for(data_dir, PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/healthz", proc) == 200
        server_pid = pidfile_pid(data_dir)
        assert embedded_pids(data_dir) == {server_pid}
        redis.Redis(unix_socket_path=str(data_dir / SOCKET)).set("before-stop", "1")
        proc.send_signal(sig)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert wait_gone(server_pid)
    assert embedded_pids(data_dir) == set() and not (data_dir / SOCKET).exists()
    assert start_or_connect(data_dir).client().get("before-stop") == b"1"  # flushed on the way out


def test_serve_leaves_a_server_it_did_not_start(data_dir: Path) -> None:
    running = start_or_connect(data_dir)
    port = free_port()
    proc = subprocess.Popen([BIN / "crmbot", "serve"], env=env_for(data_dir, PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/healthz", proc) == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert embedded_pids(data_dir) == {running.pid}


def test_the_procfiles_processes_started_together_share_one_server(data_dir: Path) -> None:
    """web:, worker: and clock: started at the same moment with no REDIS_URL: one embedded server."""
    lines = {k: v.strip() for k, _, v in (x.partition(":") for x in (ROOT / "Procfile").read_text().splitlines())
             if k in ("web", "worker", "clock")}
    port = free_port()
    env = env_for(data_dir, PORT=str(port), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    log_path = data_dir.parent / "procfile.log"
    procs = []
    with log_path.open("wb") as log_file:
        for command in lines.values():
            procs.append(subprocess.Popen(["bash", "-c", "exec " + command], env=env, stdout=log_file,
                                          stderr=subprocess.STDOUT, start_new_session=True))
    try:
        assert _wait_http(f"http://127.0.0.1:{port}/healthz", procs[0]) == 200
        deadline = time.monotonic() + 60
        # every process logs "embedded redis at" once it is connected
        while log_path.read_text().count("embedded redis at") < 3:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), log_path.read_text()
            time.sleep(0.05)  # polling processes that are still booting, bounded by the deadline
        pids = embedded_pids(data_dir)
        assert len(pids) == 1 and pids == {pidfile_pid(data_dir)}
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)


# ---- a full disk ------------------------------------------------------------------------------------
# A real one: a 1 MB tmpfs mounted for the test (the suite runs as root, as CI does) and filled up, so the
# embedded redis-server itself gets ENOSPC writing its append-only file and its snapshot. Elsewhere (no
# right to mount) the test is skipped, saying so.


@pytest.fixture
def small_disk() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="crmbot-full-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(base)],
                             capture_output=True, text=True) if os.geteuid() == 0 else None
    if mounted is None or mounted.returncode != 0:
        base.rmdir()
        pytest.skip("a full disk is a 1 MB tmpfs, and mounting one needs root (CAP_SYS_ADMIN)"
                    + (f": {mounted.stderr.strip()}" if mounted is not None else ""))
    try:
        yield base
    finally:
        (base / "filler").unlink(missing_ok=True)  # space again: a server still there can exit
        stop_embedded(base / "data")
        if subprocess.run(["umount", str(base)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(base)], capture_output=True)
        base.rmdir()


def fill(path: Path) -> None:
    """Write zeros until the filesystem is full (ENOSPC)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == 28, e  # ENOSPC
    finally:
        os.close(fd)


def test_a_full_disk_is_named_at_start_up_and_on_healthz_and_stop_still_works(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from bot.app import build_services, create_app

    data = small_disk / "data"
    server = start_or_connect(data)
    client = server.client()
    client.set("before", "kept")
    fill(small_disk / "filler")
    deadline = time.monotonic() + 30
    with pytest.raises(redis.ResponseError, match=r"^MISCONF Errors writing to the AOF file: No space left"):
        for i in range(10_000):  # the first write past the full disk is taken (in memory), the next refused
            client.set(f"during:{i}", "x" * 8192)
            assert time.monotonic() < deadline, "redis never refused a write"
    client.close()

    caplog.set_level(logging.INFO)
    svc = build_services(Config(data_dir=data))  # any crmbot process starting now says what is wrong
    [said] = [r.getMessage() for r in caplog.records if r.name == "bot.persistence"]
    # (INFO says aof_last_write_status:err; Redis 6 also refuses the PING redis-py checks a new connection
    # with, and that refusal names the cause: either way the same words)
    assert said.startswith("redis: cannot persist (disk full?): aof_last_write_status=err"), said
    assert ("it refuses every write (MISCONF) until it can write again. Free space in " + str(data)) in said, said
    res = create_app(services=svc).test_client().get("/healthz")
    assert res.status_code == 503
    assert res.get_data(as_text=True).startswith("redis: cannot persist (disk full?): aof_last_write_status=err")
    svc.redis.close()

    caplog.clear()
    assert server.stop(timeout=30) is True  # SHUTDOWN is refused (no room for the snapshot): NOSAVE
    assert embedded_pids(data) == set() and wait_gone(server.pid)
    refused = [r.getMessage() for r in caplog.records if "refused to shut down" in r.getMessage()]
    assert len(refused) == 1 and "SHUTDOWN NOSAVE" in refused[0] and str(data) in refused[0], refused

    (small_disk / "filler").unlink()  # space again: a new server has what was written before the disk filled
    again = start_or_connect(data)
    assert again.owned and again.client().get("before") == b"kept"
    caplog.clear()
    svc = build_services(Config(data_dir=data))
    assert create_app(services=svc).test_client().get("/healthz").status_code == 200
    assert not [r for r in caplog.records if r.name == "bot.persistence"]
    svc.redis.close()
    assert again.stop() is True and not [r for r in caplog.records if "refused" in r.getMessage()]


def test_stop_kills_the_server_it_started_when_it_does_not_exit_in_time(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = start_or_connect(data_dir)
    other = start_or_connect(data_dir)
    server.client().set("kept", "1")
    assert other.stop(timeout=1) is False  # not its server: nothing done, whatever its state
    os.kill(server.pid, signal.SIGSTOP)  # hung: answers nothing, exits never
    try:
        caplog.set_level(logging.INFO)
        assert server.stop(timeout=1) is True  # the bound the caller gave, then SIGKILL
        assert wait_gone(server.pid) and embedded_pids(data_dir) == set()
        assert any(f"embedded redis (pid {server.pid}) did not exit: killed (SIGKILL)" in r.getMessage()
                   for r in caplog.records)
    finally:
        if embedded_pids(data_dir):
            os.kill(server.pid, signal.SIGCONT)
    after = start_or_connect(data_dir)
    assert after.owned and after.pid != server.pid
