"""The reminder clock (``crmbot clock``, the Procfile's ``clock:``): a pass every ``interval`` seconds.

A pass is a list of named steps (queueing the reminders due now; the worker sends them) run by at most one
clock at a time. Exactly-once does not rest on the lock (every reminder has its own ledger mark);
the lock only saves duplicate work, e.g. a second clock doubling the send rate of a paced pass.

The lock (:data:`conversations.keys.CLOCK_LOCK`) holds the owner's random token:

* taken with ``SET NX PX`` and a short time to live (:data:`LOCK_TTL`, 60 s), so a clock that dies
  holding it delays the next pass by a minute at most;
* renewed while the pass runs: a background thread extends it every third of its time to live, and
  it is extended again between steps; both extend it only while it still names this owner
  (compare-and-extend, one Lua script). A clock that finds the lock gone or someone else's abandons
  its pass at the next step;
* released by compare-and-delete (one Lua script), so a clock never deletes another clock's lock.

Stopping: :func:`serve` turns SIGTERM (and Ctrl-C) into the ``stop`` event. The step under way
finishes, the remaining steps of the pass are abandoned (they run again on the next clock's pass),
the lock is released and the process exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from bot import metrics
from conversations import keys
from conversations.errors import StoreUnavailable
from conversations.redis_ops import runner

if TYPE_CHECKING:
    from bot.reminders import Reminders

log = logging.getLogger(__name__)

LOCK_TTL = 60.0  # seconds; short, since a running pass keeps renewing it
INTERVAL = 60.0  # seconds between the starts of two passes of one clock

# Outcomes of one pass.
BUSY = "busy"  # another clock holds the lock: nothing was done
DONE = "done"  # every step ran
STOPPED = "stopped"  # the stop event was set: the remaining steps were abandoned
LOST = "lost"  # the lock expired or was taken over: the remaining steps were abandoned

Step = tuple[str, Callable[[], object]]

# Compare-and-extend.  KEYS[1]: the lock.  ARGV[1]: the owner's token.  ARGV[2]: the new time to
# live in milliseconds.  Extends the lock only while it still holds this token; returns 1 if it
# did, 0 if the lock is gone or another owner's.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Compare-and-delete.  KEYS[1]: the lock.  ARGV[1]: the owner's token.  Deletes the lock only while
# it still holds this token; returns 1 if it did, 0 if the lock is gone or another owner's.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class ClockLock:
    """The clock's lock for one owner token. Every call answers Redis trouble as StoreUnavailable."""

    def __init__(self, client: Any, owner: str, *, ttl: float = LOCK_TTL, key: str = keys.CLOCK_LOCK) -> None:
        if ttl <= 0:
            raise ValueError("the lock's time to live must be positive")
        self.r = runner(client)
        self.owner = owner
        self.ttl = ttl
        self.key = key
        self._extend = self.r.script(_EXTEND)
        self._release = self.r.script(_RELEASE)

    @property
    def _px(self) -> int:
        return max(1, round(self.ttl * 1000))

    def acquire(self) -> bool:
        return bool(self.r.set(self.key, self.owner, nx=True, px=self._px))

    def extend(self) -> bool:
        """Restart the time to live, only if the lock is still ours."""
        return bool(self._extend(keys=[self.key], args=[self.owner, self._px]))

    def release(self) -> bool:
        """Delete the lock, only if it is still ours."""
        return bool(self._release(keys=[self.key], args=[self.owner]))


class _Renewer:
    """Extends a held lock every third of its time to live until stopped; notes when it is lost."""

    def __init__(self, lock: ClockLock) -> None:
        self.lock = lock
        self.lost = threading.Event()
        self.renewals = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clock-lock", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        every = self.lock.ttl / 3
        while not self._done.wait(every):
            try:
                ours = self.lock.extend()
            except StoreUnavailable as e:
                log.warning("clock: renewing the lock: %s", e)  # tried again; the lock may expire meanwhile
                continue
            if not ours:
                self.lost.set()
                return
            self.renewals += 1


class Clock:
    """Runs ``steps`` as one pass under the lock, every ``interval`` seconds, until ``stop`` is set."""

    def __init__(
        self,
        client: Any,
        steps: Sequence[Step],
        *,
        owner: str | None = None,
        ttl: float = LOCK_TTL,
        interval: float = INTERVAL,
        stop: threading.Event | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.lock = ClockLock(client, owner or uuid.uuid4().hex, ttl=ttl)
        self.now = now  # what a finished pass records (keys.CLOCK_LAST_PASS): wall time, for the metrics
        self.steps = list(steps)
        self.interval = interval
        self.stop = stop or threading.Event()
        self.renewer: _Renewer | None = None  # the current pass's (tests read its renewal count)

    def run_pass(self) -> str:
        """One pass if no other clock is running one: BUSY, DONE, STOPPED or LOST (counted in the metrics;
        a finished one's time written to Redis for the web's /metrics)."""
        if not self.lock.acquire():
            metrics.reminder_pass(BUSY)
            return BUSY
        renewer = self.renewer = _Renewer(self.lock)
        renewer.start()
        try:
            outcome = self._steps(renewer)
            metrics.reminder_pass(outcome)
            if outcome == DONE:
                self._finished()
            return outcome
        finally:
            renewer.stop()
            try:
                if not self.lock.release():
                    log.warning("clock: the lock had expired or changed hands before the pass ended")
            except StoreUnavailable as e:  # the lock then expires within its time to live
                log.warning("clock: releasing the lock: %s", e)

    def _finished(self) -> None:
        """One SET: when the last pass finished (its staleness is what an alert watches)."""
        try:
            self.lock.r.set(keys.CLOCK_LAST_PASS, repr(round(self.now(), 3)))
        except StoreUnavailable as e:
            log.warning("clock: recording the pass: %s", e)

    def _steps(self, renewer: _Renewer) -> str:
        for i, (name, step) in enumerate(self.steps):
            if i > 0:  # a safe point between two steps
                if self.stop.is_set():
                    log.info("clock: stopping; skipped %s", ", ".join(n for n, _ in self.steps[i:]))
                    return STOPPED
                if renewer.lost.is_set() or not self.lock.extend():
                    log.warning("clock: lost the lock; skipped %s", ", ".join(n for n, _ in self.steps[i:]))
                    return LOST
            started = time.monotonic()
            step()
            log.debug("clock: %s took %.1fs", name, time.monotonic() - started)
        return DONE

    def run(self) -> None:
        """Passes until ``stop`` is set (a failed pass is logged; the next one comes as usual)."""
        while not self.stop.is_set():
            try:
                outcome = self.run_pass()
                log.debug("clock: pass %s", outcome)
            except StoreUnavailable as e:
                metrics.reminder_pass("failed")
                log.warning("clock: %s", e)
            except Exception:
                metrics.reminder_pass("failed")
                log.exception("clock: pass failed")
            self.stop.wait(self.interval)


def reminder_steps(reminders: Reminders, clock: Callable[[], float] = time.time) -> list[Step]:
    """The product's pass: queue the reminders due now (the worker delivers them)."""

    def remind() -> None:
        summary = reminders.run(clock())
        if summary.queued:
            log.info("clock: %s", summary.render().splitlines()[0])

    return [("reminders", remind)]


def serve(client: Any, reminders: Reminders, clock: Callable[[], float] = time.time,
          interval: float = INTERVAL) -> int:
    """``crmbot clock``: passes in a thread until SIGTERM or Ctrl-C, then a clean stop (exit code 0).
    Its parts are wired by the caller (:func:`bot.cli.clock_cmd`; no Bolt app, no web framework).

    The main thread only waits for the clock thread, so the signal handler (which runs in the main
    thread) never interrupts code that holds the stop event's lock."""
    stop = threading.Event()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    thread = threading.Thread(
        target=Clock(client, reminder_steps(reminders, clock), interval=interval, stop=stop).run, name="clock"
    )
    log.info("crmbot clock running (a pass every %.0fs; missed reminders within the grace window go out now)",
             interval)
    try:
        thread.start()
        while thread.is_alive():
            try:
                thread.join()
            except KeyboardInterrupt:
                stop.set()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    log.info("crmbot clock stopped")
    return 0
