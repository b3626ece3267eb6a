"""Rows of the results table, and the table itself."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

PASS, MISS, INFO = "PASS", "MISS", "info"


@dataclass
class Row:
    section: str
    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = INFO

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
