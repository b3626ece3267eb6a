"""Rows of the results table, the table itself, and the scoreboard of issue 16's targets.

Adding a target (another section's figure): one :class:`Target` line in ``TARGETS`` (its key, section,
figure and the target in words), and in the section that measures it, ``target_row(key, measured,
baseline, ratio, ok)`` (or any :class:`Row` with that ``key``). ``./scripts/bench`` then prints it in the
scoreboard; a target no section measured in the run shows as "not measured", never as a number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PASS, MISS, INFO, UNMEASURED = "PASS", "MISS", "info", "not measured"


@dataclass
class Row:
    section: str
    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = INFO
    key: str = ""  # the Target it reports (TARGETS), if any

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def verdict(ok: bool) -> str:
    return PASS if ok else MISS


def ms(seconds: float) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    v = seconds * 1000
    return f"{v:.0f} ms" if v >= 100 else f"{v:.1f} ms"


def num(v: float, digits: int = 0) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.{digits}f}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def table(rows: list[Row]) -> str:
    head = ("#", "figure", "measured", "baseline (same run)", "ratio", "target", "result")
    cells = [head] + [(r.section, r.figure, r.measured, r.baseline, r.ratio, r.target, r.result) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    lines = ["| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(head))) + " |" for c in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """One of issue 16's targets: measured by ``section`` (a row with this ``key``; or, for a section that
    does not set keys, the first row whose figure starts with ``match``)."""

    key: str
    section: str
    figure: str
    target: str
    by: str  # which section (and file) measures it
    match: str = ""


TARGETS: tuple[Target, ...] = (
    Target("events-0ms", "1", "closed loop events/s, best over N, API 0 ms", ">= 0.7x echo's ceiling",
           "webhook.py"),
    Target("events-50ms", "1", "closed loop events/s, best over N, API 50 ms", ">= 1.0x echo's ceiling",
           "webhook.py"),
    Target("webhook-p99-50ms", "1", "webhook response p99, open loop, API 50 ms", "p99 >= 5x lower than echo's",
           "webhook.py"),
    Target("reply-p99-500ms", "1", "webhook -> reply at the API p99, closed loop, API 500 ms", "p99 <= 600 ms",
           "webhook.py"),
    Target("dup-50ms", "1", "duplicate replies, API 50 ms", "0", "webhook.py"),
    Target("dup-500ms", "1", "duplicate replies, API 500 ms", "0", "webhook.py"),
    Target("dup-12s", "1", "duplicate replies, API 12 s", "0", "webhook.py"),
    Target("fanout-spread", "4", "fan-out, LINE part: multicasts first to last", "<= 1.5x LINE's minimum",
           "fanout.py"),
    Target("cpu-per-delivery-workers", "6", "CPU per delivery, 1 -> 2 workers",
           "flat (2 workers <= 1.2x 1, the noise of a shared machine)", "workers.py"),
    Target("memory-per-finished-user", "3", "Redis bytes per finished user, every key family", "<= 1 KB",
           "memory.py"),
    Target("console-commands-flat", "7", "Redis commands per overview / funnel API, 10 vs 10,000 leads",
           "the same, overview <= 30", "consolecost.py"),
    Target("isolation-p99", "5", "webhook p99 with 20 funnel-API readers", "<= 1.5x idle", "isolation.py"),
    Target("cpu-web", "1", "web CPU seconds per 1,000 events, closed loop, API 50 ms", "before / after (info)",
           "webhook.py"),
    Target("cpu-worker", "1", "worker CPU seconds per 1,000 events, closed loop, API 50 ms", "before / after (info)",
           "webhook.py"),
)
BY_KEY = {t.key: t for t in TARGETS}


def target_row(key: str, measured: str, baseline: str = "", ratio_text: str = "", ok: bool | None = None,
               figure: str = "") -> Row:
    """The row of target ``key`` (PASS/MISS by ``ok``; ``None``: info, for a figure without a verdict)."""
    t = BY_KEY[key]
    return Row(t.section, figure or t.figure, measured, baseline, ratio_text, t.target,
               INFO if ok is None else verdict(ok), key)


def scoreboard(rows: list[Row]) -> list[Row]:
    """Every target, in TARGETS' order: the row measuring it in this run, or a "not measured" one."""
    out = []
    for t in TARGETS:
        found = next((r for r in rows if r.key == t.key), None)
        if found is None and t.match:
            found = next((r for r in rows if r.figure.startswith(t.match)), None)
        if found is not None:
            out.append(found)
            continue
        out.append(Row(t.section, t.figure, f"not measured in this run (by {t.by})", "", "", t.target, UNMEASURED,
                       t.key))
    return out
