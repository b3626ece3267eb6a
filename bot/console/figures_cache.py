"""The console's figures (the funnel, the tiers over time), kept for a few seconds in the process
(``CRMBOT_CONSOLE_FIGURES_SECONDS``, 5 by default; 0: every read goes to Redis).

A funnel read runs a Lua script per figures shard; 20 dashboards reading it back to back kept Redis and the
machine's CPUs busy and webhooks waited (benchmarks/README.md section 5). The figures are applied by the
worker, seconds after the event, so a figure a few seconds old is what the page showed anyway: the same
query (normalised: the parsed filters, never the raw query string) within that time is answered from here,
and concurrent reads of one query that is not kept yet make one Redis read (the others wait for it).

At most :data:`SIZE` queries are kept (least recently used dropped first). Any change made through
the console (a POST, PUT, PATCH or DELETE under /console/ that succeeded, the try-it chat's aside)
empties it, so an operator sees their own change at once. What an operator changes (a lead's status,
the consultations' counts) is never kept here.
A kept value is shared by every request that gets it: read it, never change it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import current_app

T = TypeVar("T")
SIZE = 256  # queries kept at once: a dashboard's few ranges and filters, many times over
EXTENSION = "crmbot_figures_cache"


class _Pending:
    """A read of one key in progress: the others asking for that key wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False
        self.value: Any = None


class FiguresCache:
    """Values by key for ``ttl`` seconds of ``clock``, at most ``size`` of them; thread-safe."""

    def __init__(self, ttl: float, clock: Callable[[], float], size: int = SIZE) -> None:
        self.ttl, self.clock, self.size = ttl, clock, size
        self._lock = threading.Lock()
        self._kept: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        """The value kept for ``key`` if it was read less than ``ttl`` seconds ago, else ``read()`` (once,
        however many threads ask for ``key`` meanwhile); an error of ``read`` reaches its caller and
        nothing is kept (a waiting thread then reads itself)."""
        if self.ttl <= 0:
            return read()
        while True:
            with self._lock:
                found = self._fresh(key)
                if found is not None:
                    return found[1]
                pending = self._pending.get(key)
                if pending is None:
                    mine = self._pending[key] = _Pending()
                    break
            pending.done.wait()
            if pending.ok:
                return pending.value
        try:
            value = read()
            mine.value, mine.ok = value, True
            with self._lock:
                self._kept[key] = (self.clock(), value)
                self._kept.move_to_end(key)
                while len(self._kept) > self.size:
                    self._kept.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._pending.pop(key, None)
            mine.done.set()

    def _fresh(self, key: Hashable) -> tuple[float, Any] | None:
        found = self._kept.get(key)
        if found is None:
            return None
        age = self.clock() - found[0]
        if not 0 <= age < self.ttl:
            del self._kept[key]
            return None
        self._kept.move_to_end(key)
        return found

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()


def install(app: Any, ttl: float, clock: Callable[[], float]) -> None:
    """The app's figures cache, emptied after every change the console made."""
    cache = app.extensions[EXTENSION] = FiguresCache(ttl, clock)

    def after(response: Any) -> Any:
        from flask import request

        changed = request.method not in ("GET", "HEAD", "OPTIONS") and response.status_code < 400
        if changed and request.path.startswith("/console/") and not request.path.startswith("/console/try"):
            cache.clear()
        return response

    app.after_request(after)


def figures(key: Hashable, read: Callable[[], T]) -> T:
    """``read()``, or its value kept for ``key`` by the current app's cache."""
    cache: FiguresCache = current_app.extensions[EXTENSION]
    return cache.get(key, read)
