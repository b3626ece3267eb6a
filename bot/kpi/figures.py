"""Figures as people type them, checked against the catalog before anything is stored.

Channel-neutral: the checks answer with a :data:`Problem` per field (an indicator's key, or
``"quarter"``), never with words; each adapter says them in its own (the Slack modal's errors,
:mod:`bot.slack.blocks`). Stored figures outlive catalog edits: :func:`usable_figures` leaves out what
the current catalog can no longer score.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from typing import Any, Literal

from conversations.kpi_catalog import Catalog
from scoring.kpi import target_problem
from scoring.periods import Quarter

MAX_INPUT_CHARS = 20  # a figure longer than this (as typed) is not a number we take

# What is wrong with one field of a submission:
#   "number"        not a number (or a required figure left blank)
#   "percent"       a share above 100%
#   "range"         outside the indicator's valid range
#   "floor"         a target on the wrong side of a rating scale's floor
#   "quarter"       no quarter chosen (or not one)
#   "running"       the quarter has not ended
#   "owner_changed" the areas the form had inputs for are no longer this person's
Problem = Literal["number", "percent", "range", "floor", "quarter", "running", "owner_changed"]
QUARTER_FIELD = "quarter"  # the field a problem of the whole submission is shown under


def parse_number(text: str | None) -> float | None:
    """'92.5', '９２．５', '1,200', '95%', '−20' -> float; blank -> None; anything else -> ValueError."""
    if text is None:
        return None
    # NFKC turns full-width digits, '．' and '－' into ASCII; the minus sign U+2212 it leaves alone
    s = unicodedata.normalize("NFKC", text).strip().replace(",", "").replace("\u2212", "-")
    if not s:
        return None
    s = s.removesuffix("%").strip()
    if len(s) > MAX_INPUT_CHARS:
        raise ValueError("too long")
    value = float(s)  # ValueError for anything that is not a number
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def check_figures(
    catalog: Catalog, typed: Mapping[str, str | None], *, as_targets: bool = False
) -> tuple[dict[str, float], dict[str, Problem]]:
    """The figures as typed (indicator key -> text; blank or absent: not reported) -> (values, problems
    by indicator key), in catalog order. ``as_targets``: they are targets (a scale's target must lie on
    the better side of its floor)."""
    values: dict[str, float] = {}
    problems: dict[str, Problem] = {}
    for ind in catalog.indicators:
        if ind.key not in typed:
            continue
        try:
            value = parse_number(typed[ind.key])
        except ValueError:
            problems[ind.key] = "number"
            continue
        if value is None:
            continue
        if ind.unit == "%" and value > 100 >= ind.maximum:  # a share (growth may pass 100%)
            problems[ind.key] = "percent"
        elif not ind.minimum <= value <= ind.maximum:
            problems[ind.key] = "range"
        elif as_targets and ind.floor is not None and target_problem(ind, value):
            problems[ind.key] = "floor"
        else:
            values[ind.key] = value
    return values, problems


def check_quarter(key: str, running: Quarter) -> tuple[Quarter | None, Problem | None]:
    """The quarter a report is for (its key, "2026-Q1" or "2026-M03"): one of the team's quarters (those of
    ``running``'s shift), refused unless it has ended (before ``running``)."""
    try:
        quarter = Quarter.parse(key)
    except ValueError:
        return None, "quarter"
    if quarter.shift != running.shift:
        return None, "quarter"
    if quarter >= running:
        return None, "running"
    return quarter, None


def usable_figures(catalog: Catalog, figures: Any, *, targets: bool = False) -> dict[str, float]:
    """Figures the current catalog can score: stored reports outlive catalog edits (a renamed
    indicator, a narrower range, a new rule), and an old figure the catalog no longer knows is left
    out; so is an old target the indicator's rule no longer accepts (its default applies)."""
    out = {}
    for key, value in dict(figures or {}).items():
        try:
            ind = catalog.indicator(key)
        except KeyError:
            continue
        if ind.minimum <= value <= ind.maximum and not (targets and target_problem(ind, value)):
            out[key] = value
    return out
