"""Client-side rate limiting: a small thread-safe token bucket, and one bucket per key.

A bucket holds up to ``burst`` tokens and refills at ``rate`` tokens per second. ``acquire()``
takes a token and, when none is left, sleeps until its turn: a reservation may take the bucket
into debt, and whoever reserves next waits for that debt too, so callers go in the order they
asked. ``hold(seconds)`` is for a server that answered 429 with Retry-After: nobody gets a token
before then. The clock and the sleep are injectable, so tests drive a bucket without real time.

Limits are per process (each gunicorn worker, ``crmbot worker`` and ``crmbot clock`` has its own
buckets); the APIs' limits are per channel or workspace, so a 429 can still happen when several
processes send at once. The outbox retries those, honouring Retry-After.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping

from conversations.errors import ConfigError

Clock = Callable[[], float]
Sleep = Callable[[float], None]
# A 429's Retry-After up to this long holds the bucket (the senders after it wait); a longer one is
# an outage rather than pacing, and is left to the outbox's backoff instead of tying up senders.
MAX_HOLD = 5.0


class TokenBucket:
    def __init__(
        self, rate: float, burst: float = 1.0, *, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive (got {rate!r})")
        if not burst >= 1:
            raise ValueError(f"burst must be at least 1 (got {burst!r})")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, n: float = 1.0) -> float:
        """Take ``n`` tokens now, into debt if need be; returns the seconds to wait before acting."""
        with self._lock:
            self._refill()
            self._tokens -= n
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, n: float = 1.0) -> float:
        """Take ``n`` tokens, sleeping until they are due. Returns the seconds slept."""
        wait = self.reserve(n)
        if wait > 0:
            self._sleep(wait)
        return wait

    def try_acquire(self, n: float = 1.0) -> bool:
        """Take ``n`` tokens only if they are there now (never waits, never goes into debt)."""
        with self._lock:
            self._refill()
            if self._tokens >= n:
                self._tokens -= n
                return True
            return False

    def hold(self, seconds: float) -> None:
        """No token before ``seconds`` from now (the server said Retry-After); later ones follow at the rate."""
        if not seconds > 0:
            return
        with self._lock:
            self._refill()
            self._tokens = min(self._tokens, 1.0 - seconds * self.rate)

    def idle(self) -> bool:
        """Full: nobody has used it for a while (a keyed bucket in this state can be dropped)."""
        with self._lock:
            self._refill()
            return self._tokens >= self.burst

    @property
    def available(self) -> float:
        """Tokens available now (negative: debt, in tokens)."""
        with self._lock:
            self._refill()
            return self._tokens


class KeyedBuckets:
    """One :class:`TokenBucket` per key (a channel, a workspace), made on first use.

    Idle (full) buckets are dropped once more than ``max_keys`` exist, so memory stays bounded.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        max_keys: int = 10_000,
    ) -> None:
        TokenBucket(rate, burst, clock=clock, sleep=sleep)  # validates the arguments
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._buckets: dict[str, TokenBucket] = {}

    def bucket(self, key: str) -> TokenBucket:
        with self._lock:
            b = self._buckets.get(key)
            if b is None:
                if len(self._buckets) >= self.max_keys:
                    for k in [k for k, v in self._buckets.items() if v.idle()]:
                        del self._buckets[k]
                b = self._buckets[key] = TokenBucket(self.rate, self.burst, clock=self._clock, sleep=self._sleep)
            return b

    def acquire(self, key: str, n: float = 1.0) -> float:
        return self.bucket(key).acquire(n)

    def hold(self, key: str, seconds: float) -> None:
        self.bucket(key).hold(seconds)

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


def rate_from_env(name: str, default: float, env: Mapping[str, str] | None = None) -> float | None:
    """A rate (per second) from the environment: a positive number, or ``0``/``off`` for no limit
    (returned as None). A bad value raises ConfigError naming the variable."""
    env = os.environ if env is None else env
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "off", "none"):
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise ConfigError(f"environment: {name} must be requests per second, or 0 for no limit (got {raw[:20]!r})")
    return value


def burst_from_env(name: str, default: float, env: Mapping[str, str] | None = None) -> float:
    """A burst size (requests) from the environment: a number of at least 1."""
    env = os.environ if env is None else env
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 1 <= value < float("inf"):
        raise ConfigError(f"environment: {name} must be a number of requests, at least 1 (got {raw[:20]!r})")
    return value
