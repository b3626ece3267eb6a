"""The nurture page's rows (``/console/nurture``, ``/console/api/nurture``): LINE's figures per aggregation unit
(bot/insight.py) over a period, grouped as the operator thinks of them: the follow-up steps by question and step
(``fu_q<N>_<step>``), the nudges by question (``nudge_q<N>``), then any other unit by name. A count LINE
withheld, and a rate made from it, is "—", never 0; a unit whose days LINE has not given yet says so."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Response, current_app, jsonify, request

from bot.console import fmt
from bot.console.texts import texts
from bot.insight import UnitFigures, period_figures

WITHHELD = "—"
GROUPS = ("followups", "nudges", "other")
_FOLLOWUP = re.compile(r"^fu_q(\d+)_(\d+)$")
_NUDGE = re.compile(r"^nudge_q(\d+)$")


@dataclass(frozen=True)
class Row:
    unit: str
    label: str
    delivered: int
    opened: str
    clicked: str
    opened_rate: str
    clicked_rate: str
    has_figures: bool
    figures: UnitFigures

    def as_json(self) -> dict[str, Any]:
        f = self.figures
        return {"unit": self.unit, "delivered": self.delivered, "opened": f.opened if self.has_figures else None,
                "clicked": f.clicked if self.has_figures else None, "has_figures": self.has_figures}


@dataclass(frozen=True)
class Group:
    key: str  # followups, nudges, other
    rows: list[Row]


def count(v: int | None) -> str:
    return WITHHELD if v is None else str(v)


def rate(f: UnitFigures, v: int | None) -> str:
    r = f.rate(v)
    return WITHHELD if r is None else f"{100 * r:.1f}%"


def _place(unit: str, t: Mapping[str, str]) -> tuple[str, tuple[int, int, str], str]:
    """(group, sort key, label) of a unit."""
    if m := _FOLLOWUP.match(unit):
        q, step = int(m.group(1)), int(m.group(2))
        return "followups", (q, step, unit), t["nurture_step"].format(q=q, step=step)
    if m := _NUDGE.match(unit):
        q = int(m.group(1))
        return "nudges", (q, 0, unit), t["nurture_nudge"].format(q=q)
    return "other", (0, 0, unit), unit


def groups(figures: list[UnitFigures], t: Mapping[str, str]) -> list[Group]:
    """The units' rows by group (only groups with a row), each group in question then step order."""
    placed: dict[str, list[tuple[tuple[int, int, str], Row]]] = {g: [] for g in GROUPS}
    for f in figures:
        group, key, label = _place(f.unit, t)
        has = f.days > 0
        row = Row(f.unit, label, f.delivered, count(f.opened) if has else "", count(f.clicked) if has else "",
                  rate(f, f.opened) if has else "", rate(f, f.clicked) if has else "", has, f)
        placed[group].append((key, row))
    return [Group(g, [row for _, row in sorted(placed[g], key=lambda x: x[0])]) for g in GROUPS if placed[g]]


def read(client: Any, start: date, end: date, t: Mapping[str, str]) -> list[Group]:
    return groups(period_figures(client, start, end), t)


def api() -> Response:
    """``GET /console/api/nurture``: the page's figures from ``from`` to ``to`` (Japan-time dates; the last 30 days
    by default): per group, each unit's ``delivered``, ``opened`` and ``clicked`` (null: withheld by LINE, or no
    figures yet) and ``has_figures`` (false: LINE's figures not in yet). Registered on ``console_tools``."""
    s = current_app.extensions["crmbot"]
    try:
        start, end = fmt.day_range(request.args.get("from"), request.args.get("to"), s.clock(), 30)
    except ValueError:
        return Response('{"error": "from and to are dates, YYYY-MM-DD, from not after to"}\n', 400,
                        mimetype="application/json")
    assert start is not None and end is not None
    found = read(s.redis, start, end, texts())
    return jsonify({"from": start.isoformat(), "to": end.isoformat(),
                    "groups": {g.key: [row.as_json() for row in g.rows] for g in found}})
