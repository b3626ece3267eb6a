"""The reminder clock's lock on the real Redis: one pass at a time, renewed while a pass runs,
released only by its owner, and a clean stop on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import redis

from bot.clock import BUSY, DONE, LOST, STOPPED, Clock, ClockLock, Step
from conversations.keys import CLOCK_LOCK

BIN = Path(sys.executable).parent


def poll(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not met within {timeout}s")
        time.sleep(0.01)  # polling, bounded by the deadline


class Gate:
    """A step that says when it has started and then blocks until the test opens it."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.entered_at = 0.0
        self.opened = threading.Event()

    def __call__(self) -> None:
        self.entered_at = time.monotonic()
        self.entered.set()
        assert self.opened.wait(30), "the test never opened the gate"


def recorder(ran: list[str], name: str) -> Step:
    return name, lambda: ran.append(name)


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def test_a_second_clock_cannot_take_the_lock_while_the_first_runs_a_long_pass(r: redis.Redis) -> None:
    gate, ran = Gate(), []
    first = Clock(r, [("long", gate), recorder(ran, "first: after")], owner="first")
    second = Clock(r, [recorder(ran, "second")], owner="second")
    thread, outcome = in_thread(first.run_pass)
    try:
        assert gate.entered.wait(10)
        assert second.run_pass() == BUSY
        assert ran == [] and r.get(CLOCK_LOCK) == b"first"
    finally:
        gate.opened.set()
        thread.join(10)
    assert outcome == [DONE] and ran == ["first: after"]
    assert r.get(CLOCK_LOCK) is None  # released at the end of the pass
    assert second.run_pass() == DONE and ran == ["first: after", "second"]


def test_the_lock_outlives_its_time_to_live_while_a_pass_runs(r: redis.Redis) -> None:
    ttl = 0.3
    unrenewed = ClockLock(r, "control", ttl=ttl)  # the same lock, nobody renewing it: it expires
    assert unrenewed.acquire()
    poll(lambda: r.get(CLOCK_LOCK) is None)

    gate = Gate()
    clock = Clock(r, [("long", gate)], owner="renewed", ttl=ttl)
    thread, outcome = in_thread(clock.run_pass)
    try:
        assert gate.entered.wait(10)
        renewer = clock.renewer
        assert renewer is not None
        poll(lambda: renewer.renewals >= 4)  # one every ttl/3: the lock has been held for more than its ttl
        assert time.monotonic() - gate.entered_at >= ttl
        assert r.get(CLOCK_LOCK) == b"renewed"
        assert 0 < r.pttl(CLOCK_LOCK) <= ttl * 1000
        assert not renewer.lost.is_set()
    finally:
        gate.opened.set()
        thread.join(10)
    assert outcome == [DONE] and r.get(CLOCK_LOCK) is None


def test_extend_and_release_leave_another_owners_lock_alone(r: redis.Redis) -> None:
    mine = ClockLock(r, "mine", ttl=60)
    assert mine.acquire() and not ClockLock(r, "theirs").acquire()
    r.set(CLOCK_LOCK, "theirs", px=45_000)  # ours expired meanwhile and another clock took it
    assert not mine.extend()
    assert not mine.release()
    assert r.get(CLOCK_LOCK) == b"theirs" and 0 < r.pttl(CLOCK_LOCK) <= 45_000  # not extended to 60 s either
    assert not mine.acquire()


def test_a_pass_that_loses_its_lock_abandons_the_rest_and_leaves_the_new_owners_lock(r: redis.Redis) -> None:
    ran: list[str] = []

    def taken_over() -> None:
        r.set(CLOCK_LOCK, "theirs", px=60_000)

    clock = Clock(r, [("first", taken_over), recorder(ran, "second")], owner="mine")
    assert clock.run_pass() == LOST
    assert ran == [] and r.get(CLOCK_LOCK) == b"theirs"


def test_stop_ends_the_clock_at_the_next_safe_point_and_releases_the_lock(r: redis.Redis) -> None:
    gate, ran = Gate(), []
    stop = threading.Event()
    clock = Clock(r, [("first", gate), recorder(ran, "second")], owner="mine", interval=3600, stop=stop)
    thread, _ = in_thread(clock.run)
    try:
        assert gate.entered.wait(10)
        stop.set()  # what SIGTERM does
    finally:
        gate.opened.set()
        thread.join(10)
    assert not thread.is_alive()  # the loop ended without waiting out its hour
    assert ran == []  # the step after the safe point was abandoned
    assert r.get(CLOCK_LOCK) is None
    stop.clear()
    assert clock.run_pass() == DONE and ran == ["second"]  # and it runs on the next pass


def test_a_pass_stopped_between_steps_reports_it(r: redis.Redis) -> None:
    ran: list[str] = []
    stop = threading.Event()
    clock = Clock(r, [("first", stop.set), recorder(ran, "second")], owner="mine", stop=stop)
    assert clock.run_pass() == STOPPED
    assert ran == [] and r.get(CLOCK_LOCK) is None


def test_crmbot_clock_exits_0_on_sigterm_and_leaves_no_lock(r: redis.Redis, redis_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SLACK_"))}
    env |= {"REDIS_URL": redis_url, "CRMBOT_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen([BIN / "crmbot", "--log-level", "DEBUG", "clock"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        poll(lambda: any("clock: pass done" in line for line in lines) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, "".join(lines)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    assert any("crmbot clock stopped" in line for line in lines), "".join(lines)
    assert r.get(CLOCK_LOCK) is None
