"""Probes for the web process, loaded by Python at start when this directory is on PYTHONPATH.

    BENCH_PROBE=gc,profile PYTHONPATH=benchmarks/probes ./scripts/bench --only webhook

Only a ``crmbot web`` or ``crmbot console serve`` process is probed (the bench's other processes inherit
the environment and are left alone). At its exit (SIGTERM, as the bench stops it) it writes to
``benchmarks/results/probes/``:

- ``gc``: every collection that took over 5 ms or was a full one (seconds since start, generation,
  milliseconds, objects frozen at that time), and per generation the count, total and longest; how
  many objects the collector tracked at the end. ``web-<pid>-gc.json``.
- ``profile``: cProfile of every request thread (waitress's ``HTTPChannel.service``, merged), wall
  time: ``web-<pid>.prof`` (``python -m pstats`` reads it).

This is what found the full collections of the built app's heap (benchmarks/README.md, "The webhook's
tail"). Not imported by the product; nothing here runs unless PYTHONPATH names this directory.
"""

from __future__ import annotations

import atexit
import gc
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "results" / "probes"
PROBES = set(filter(None, os.environ.get("BENCH_PROBE", "").split(",")))
SERVES = sys.argv[1:2] == ["web"] or sys.argv[1:3] == ["console", "serve"]


def _gc_probe() -> None:
    t0 = time.perf_counter()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    slow: list[tuple[float, int, float, int]] = []
    began = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
            return
        took = time.perf_counter() - began[0]
        pauses[info["generation"]].append(took)
        if took > 0.005 or info["generation"] == 2:
            slow.append((round(began[0] - t0, 2), info["generation"], round(took * 1000, 1), gc.get_freeze_count()))

    gc.callbacks.append(callback)

    def dump() -> None:
        out = {"by_generation": {g: {"n": len(v), "total_ms": sum(v) * 1000, "max_ms": max(v, default=0) * 1000}
                                 for g, v in pauses.items()},
               "tracked_at_exit": len(gc.get_objects()), "frozen": gc.get_freeze_count(), "slow": slow}
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"web-{os.getpid()}-gc.json").write_text(json.dumps(out, indent=1))

    atexit.register(dump)


def _profile_probe() -> None:
    import cProfile
    import pstats

    from waitress.channel import HTTPChannel

    local = threading.local()
    profiles: list[cProfile.Profile] = []
    service = HTTPChannel.service

    def profiled(self: Any) -> Any:
        prof = getattr(local, "prof", None)
        if prof is None:
            prof = local.prof = cProfile.Profile()
            profiles.append(prof)
        prof.enable()
        try:
            return service(self)
        finally:
            prof.disable()

    HTTPChannel.service = profiled  # type: ignore[method-assign]

    def dump() -> None:
        stats: pstats.Stats | None = None
        for prof in profiles:
            prof.create_stats()
            stats = pstats.Stats(prof) if stats is None else stats.add(prof)
        if stats is not None:
            OUT.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(str(OUT / f"web-{os.getpid()}.prof"))

    atexit.register(dump)


if SERVES and "gc" in PROBES:
    _gc_probe()
if SERVES and "profile" in PROBES:
    _profile_probe()
