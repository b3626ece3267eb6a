"""What keeps the suite to itself: the environment it scrubs, and a registry of what it starts.

* :func:`scrub_environment` drops every variable that could point the code under test (or a
  ``crmbot`` process a test starts) at the developer's own Redis, data or LINE/Slack accounts.
* :data:`REGISTRY` records every temp dir the suite makes outside pytest's ``tmp_path``
  (:func:`mkdtemp`) and every process it starts (:func:`track_process`). At the end of the session
  the root conftest calls :meth:`Registry.sweep`: whatever is still running is killed (by PID; only
  processes the registry knows to be ours), whatever dir is still there is removed, and the run fails
  naming each one.

A process is "ours" when the suite started it (a tracked :class:`subprocess.Popen`, or a member of a
process group the suite started with ``start_new_session=True``), or when it is a ``redis-server``
whose working directory or command line names a dir the suite made (the embedded Redis a ``crmbot``
process starts daemonizes out of its parent's group, but runs in its data dir).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path

# Names the code under test reads to find a Redis, its data or the chat platforms' accounts.
SCRUBBED_NAMES = ("REDIS_URL", "REDIS_CLUSTER")
SCRUBBED_PREFIXES = ("CRMBOT_", "LINE_", "SLACK_")
# Test-only knobs that share a prefix with the above and are kept.
KEPT_NAMES = ("LINE_OPENAPI_DIR", "REDIS_SERVER_BIN")


def scrubbed(name: str) -> bool:
    if name in KEPT_NAMES:
        return False
    return name in SCRUBBED_NAMES or name.startswith(SCRUBBED_PREFIXES)


def scrub_environment(env: MutableMapping[str, str]) -> list[str]:
    """Remove the variables that could reach the developer's own Redis or accounts; return their names."""
    names = sorted(name for name in env if scrubbed(name))
    for name in names:
        del env[name]
    return names


@dataclass(frozen=True)
class ProcInfo:
    pid: int
    comm: str
    state: str
    pgid: int
    start: int  # clock ticks since boot
    cwd: str  # "" when unreadable (another user's process, or a zombie)
    cmdline: str


def proc_info(pid: int) -> ProcInfo | None:
    """What /proc says about a process, or None if it is gone."""
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
    except OSError:
        return None
    # comm is in parentheses and may itself contain spaces or parentheses
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2 :].split()
    state, pgid, start = rest[0], int(rest[2]), int(rest[19])
    try:
        cwd = os.readlink(base / "cwd").removesuffix(" (deleted)")
    except OSError:
        cwd = ""
    try:
        cmdline = (base / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmdline = ""
    return ProcInfo(pid, comm, state, pgid, start, cwd, cmdline)


def all_processes() -> Iterator[ProcInfo]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            info = proc_info(int(entry.name))
            if info is not None:
                yield info


def alive(info: ProcInfo | None) -> bool:
    return info is not None and info.state not in ("Z", "X")  # a zombie has exited; its parent reaps it


def _under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(str(root) + os.sep)


@dataclass
class Tracked:
    proc: subprocess.Popen[bytes] | subprocess.Popen[str]
    what: str
    group: bool  # started with start_new_session=True: its pid is the group id of all it forks
    start: int  # the leader's start time, so a later process reusing the group id is never taken for ours


@dataclass
class Registry:
    dirs: list[Path] = field(default_factory=list)
    procs: list[Tracked] = field(default_factory=list)
    # dirs whose processes are ours too (pytest's tmp_path base), though they are not removed here
    watched: list[Path] = field(default_factory=list)

    # ---- recording -----------------------------------------------------------------------------
    def mkdtemp(self, prefix: str) -> str:
        """A fresh temp dir that must be gone when the session ends."""
        path = tempfile.mkdtemp(prefix=prefix)
        self.track_dir(path)
        return path

    def track_dir(self, path: str | Path) -> None:
        resolved = Path(path).resolve()
        if resolved not in self.dirs:
            self.dirs.append(resolved)

    def watch(self, path: str | Path) -> None:
        resolved = Path(path).resolve()
        if resolved not in self.watched:
            self.watched.append(resolved)

    def track_process(self, proc: subprocess.Popen[bytes] | subprocess.Popen[str], what: str, *,
                      group: bool = False) -> None:
        """A process the suite started, which must have exited when the session ends. ``group``: it
        was started with ``start_new_session=True`` and everything it forks must have exited too."""
        info = proc_info(proc.pid)
        self.procs.append(Tracked(proc, what, group, info.start if info else 0))

    # ---- checking ------------------------------------------------------------------------------
    def _roots(self) -> list[Path]:
        return self.dirs + self.watched

    def _ours_by_place(self, info: ProcInfo) -> Path | None:
        """The suite's dir a redis-server runs in or names on its command line, if any."""
        if info.comm != "redis-server" and "redis-server" not in info.cmdline.split(" ", 1)[0]:
            return None
        for root in self._roots():
            named = any(_under(word.split(":", 1)[-1], root) for word in info.cmdline.split())
            if (info.cwd and _under(info.cwd, root)) or named:
                return root
        return None

    def leftover_processes(self) -> list[tuple[int, str]]:
        """(pid, description) of every process of ours still running."""
        found: dict[int, str] = {}
        me = os.getpid()
        groups = {t.proc.pid: t for t in self.procs if t.group}
        for t in self.procs:
            if t.proc.poll() is None:
                found[t.proc.pid] = f"{t.what} (pid {t.proc.pid}) still running"
        for info in all_processes():
            if info.pid == me or info.pid in found or not alive(info):
                continue
            leader = groups.get(info.pgid)
            if leader is not None and info.start >= leader.start:
                found[info.pid] = f"{info.comm} (pid {info.pid}) forked by {leader.what} still running"
                continue
            root = self._ours_by_place(info)
            if root is not None:
                found[info.pid] = f"{info.comm} (pid {info.pid}, in {info.cwd or '?'}) left running: {info.cmdline}"
        return sorted(found.items())

    def leftover_dirs(self) -> list[Path]:
        return [d for d in self.dirs if d.exists()]

    def leftovers(self) -> list[str]:
        return [text for _, text in self.leftover_processes()] + [f"temp dir {d} not removed"
                                                                  for d in self.leftover_dirs()]

    # ---- cleaning up ---------------------------------------------------------------------------
    def sweep(self) -> list[str]:
        """Kill every leftover process of ours and remove every leftover dir; say what there was."""
        procs, dirs = self.leftover_processes(), self.leftover_dirs()
        for pid, _ in procs:
            tracked = next((t for t in self.procs if t.proc.pid == pid), None)
            if tracked is not None:
                tracked.proc.kill()
                tracked.proc.wait(timeout=10)
                continue
            with contextlib.suppress(ProcessLookupError):  # it may have exited meanwhile
                os.kill(pid, signal.SIGKILL)
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        return [text for _, text in procs] + [f"temp dir {d} not removed" for d in dirs]


REGISTRY = Registry()


def mkdtemp(prefix: str) -> str:
    return REGISTRY.mkdtemp(prefix)


def track_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str], what: str, *, group: bool = False) -> None:
    REGISTRY.track_process(proc, what, group=group)
