"""Scoring of the quarterly KPI evaluation (四半期KPI評価): five areas, each scored 0-10.

Pure functions only: no I/O, no storage, no imports from the rest of the project. The catalog of
areas and indicators (names, units, default targets) is data, loaded and checked elsewhere
(``conversations.kpi_catalog``); this module only does the arithmetic.

The rules
---------
* An :class:`Indicator` is one measurable figure (data completeness %, NPS, F2 rate, ...). It
  belongs to one area, has a ``direction`` (``"higher"`` or ``"lower"`` is better), a plausible
  range ``minimum``..``maximum``, a default ``target`` inside that range and a scoring ``rule``.
  ``required`` is metadata for whoever collects the figures (see :func:`missing_required`);
  scoring itself accepts partial reports.
* :func:`score_indicator` turns one value into an integer score 0..10 (10 = target met or beaten,
  0 = target missed by far). ``ValueError`` if the value is not a finite ``int``/``float`` (bools
  are refused) or lies outside ``minimum``..``maximum``; an explicit target must satisfy the same
  (and, for the scale rule, lie on the better side of the floor: :func:`target_problem`).

  ``"gap"`` - for levels such as a percentage where the target is a level to reach::

      shortfall = target - value      (higher is better)
      shortfall = value - target      (lower is better)
      shortfall <= 0  -> 10
      otherwise       -> max(0, 10 - 2 * ceil(shortfall / step))

  so every started ``step`` short of the target costs 2 points. With target 95 and step 5 (the
  domain example, "95%+ complete scores 10, 90-94% scores 8"): 95 and above -> 10, 90 to 94.x
  -> 8, 85 to 89.x -> 6, 80 to 84.x -> 4, 75 to 79.x -> 2, below 75 -> 0.

  ``"ratio"`` - for counts, rates and times where attainment is a proportion of the target::

      attainment = value / target     (higher is better; a target of 0 is attained by any value)
      attainment = target / value     (lower is better; a value of 0 is full attainment)
      attainment >= 1 -> 10, otherwise floor(attainment * 10)

  A ratio indicator's range (and so its values and targets) must not be negative.

  ``"scale"`` - for a rating scale whose bottom is not zero (a 1-5 survey): ``floor`` is the
  value that scores 0 (the scale's worst end) and the target scores 10, linearly in between::

      attainment = (value - floor) / (target - floor)     (higher is better)
      attainment = (floor - value) / (floor - target)     (lower is better)
      attainment >= 1 -> 10, attainment <= 0 -> 0, otherwise floor(attainment * 10)

  The floor lies in the range, on the worse side of the default target (and of any team target).
  On a 1-5 scale with floor 1 and target 4.2: 1.0 -> 0, 3.0 -> 6, 4.2 and above -> 10.

  ``"improve"`` - "better than the last quarter": scored against the previous quarter's figure
  (``previous``) when there is one; the figure must beat it (strictly) to score 10, and every
  started ``step`` by which it falls short of beating it costs 2 points::

      shortfall = previous - value    (higher is better; value - previous when lower is better)
      shortfall < 0 -> 10
      otherwise     -> max(0, 10 - 2 * (floor(shortfall / step) + 1))

  so holding last quarter's figure scores 8. Without a previous figure (the first report, or the
  figure was not reported last quarter) it is scored against ``target`` exactly like ``"gap"``.

  ``"yoy"`` - "better than the same quarter last year": as ``"improve"``, against the figure of the
  same quarter a year earlier (``year_ago``); in the first year, without it, against ``target``. For
  a figure measured against a fixed baseline (time saved since the CRM came in), which would
  otherwise score 10 for ever once the target is met.

* An indicator with ``counted=False`` is *for reference*: scored and shown, but left out of its
  area's mean, of the figure pulling an area down and of the coverage (an open rate, which is easy to
  lift and says nothing of sales). A ``retired`` indicator is one the catalog no longer asks for: it
  is kept so that reports stored with it still score as they did; it appears in a result only when
  the report has its figure.

  ``shortfall / step`` and ``attainment * 10`` are rounded to 9 decimals before ``ceil``/``floor``
  so that binary-float noise (``0.30000000000000004``) never costs a point. Every rule is
  monotonic: a better value never scores lower.
* :func:`score_report` scores one quarter's report. ``values`` is keyed by indicator key; a key
  that is missing or ``None`` means "not reported". ``targets`` overrides default targets per
  indicator key. Unknown keys in either mapping raise ``ValueError`` (they are typos, not data).

  - An area's score is the mean of its **reported** indicator scores, rounded to one decimal.
    An area with nothing reported scores ``None`` ("not reported"), never 0.
  - ``overall`` is the mean of the reported areas' (rounded) scores, rounded to one decimal;
    ``None`` when no area was reported.
  - ``weakest`` is the reported area with the lowest score; on a tie the area earlier in catalog
    order wins (the catalog lists the areas in the domain's order). ``None`` when nothing was
    reported.
  - ``weakest_figure`` is the indicator that pulled the weakest area down: its reported indicator
    with the lowest score (the earlier one on a tie). ``None`` when there is no weakest area or
    that indicator scores 10 (nothing pulled it down).
  - Coverage: each area and the result count the figures ``reported`` of the ``total``, so a
    figure left blank (which leaves its area's mean to the others) is visible.
  - ``previous`` (optional) holds the previous quarter's figures, used by the ``"improve"`` rule.

  Rounding is half up (7.25 -> 7.3) and computed exactly (fractions/decimals), so a mean never
  drifts by binary-float error.
* :func:`compare` gives the change from one report to the next, per area and for
  ``"overall"``: ``current - previous`` rounded to one decimal, ``None`` where either side is not
  reported (or there is no previous report at all).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Literal, get_args

__all__ = [
    "DIRECTIONS",
    "MAX_SCORE",
    "OVERALL",
    "RULES",
    "AreaScore",
    "Basis",
    "Direction",
    "Indicator",
    "IndicatorScore",
    "KpiResult",
    "Rule",
    "compare",
    "missing_required",
    "score_indicator",
    "score_report",
    "target_problem",
]

Direction = Literal["higher", "lower"]
Rule = Literal["gap", "ratio", "scale", "improve", "yoy"]
Basis = Literal["target", "previous", "year"]  # what an indicator's score was measured against
DIRECTIONS: tuple[str, ...] = get_args(Direction)
RULES: tuple[str, ...] = get_args(Rule)
MAX_SCORE = 10
OVERALL = "overall"  # the key of the overall change in compare(); no area may use it

_GAP_POINTS_PER_STEP = 2
_NOISE_DIGITS = 9
_ONE_DECIMAL = Decimal("0.1")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Indicator:
    """One measurable KPI figure and how it is scored (see the module docstring).

    Raises ``ValueError`` for an inconsistent definition: empty key or area, unknown direction or
    rule, non-finite numbers, ``minimum >= maximum``, a target outside the range, ``step <= 0``,
    or a negative minimum for the ratio rule.
    """

    key: str
    area: str
    direction: Direction
    unit: str
    minimum: float
    maximum: float
    target: float
    rule: Rule
    step: float = 5.0
    required: bool = False
    floor: float | None = None  # the scale rule's zero point (its scale's worst end); only that rule has one
    counted: bool = True  # False: for reference, left out of the area's mean (see the module docstring)
    retired: bool = False  # no longer asked for; kept so that stored reports score as they did

    def __post_init__(self) -> None:
        for name in ("key", "area"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"indicator {name} must be a non-empty string, got {getattr(self, name)!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"{self.key}: direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.rule not in RULES:
            raise ValueError(f"{self.key}: rule must be one of {', '.join(RULES)}, got {self.rule!r}")
        for name in ("minimum", "maximum", "target", "step"):
            if not _is_number(getattr(self, name)):
                raise ValueError(f"{self.key}: {name} must be a finite number, got {getattr(self, name)!r}")
        if self.minimum >= self.maximum:
            raise ValueError(f"{self.key}: minimum {self.minimum} must be below maximum {self.maximum}")
        if self.rule == "ratio" and self.minimum < 0:
            raise ValueError(f"{self.key}: the ratio rule needs a minimum of 0 or more, got {self.minimum}")
        if not self.minimum <= self.target <= self.maximum:
            raise ValueError(f"{self.key}: target {self.target} is outside {self.minimum}..{self.maximum}")
        if self.step <= 0:
            raise ValueError(f"{self.key}: step must be above 0, got {self.step}")
        if self.retired and self.required:
            raise ValueError(f"{self.key}: a retired indicator cannot be required")
        if self.rule != "scale":
            if self.floor is not None:
                raise ValueError(f"{self.key}: only the scale rule has a floor")
            return
        if not _is_number(self.floor):
            raise ValueError(f"{self.key}: the scale rule needs a floor (a finite number), got {self.floor!r}")
        assert self.floor is not None
        if not self.minimum <= self.floor <= self.maximum:
            raise ValueError(f"{self.key}: floor {self.floor} is outside {self.minimum}..{self.maximum}")
        problem = target_problem(self, self.target)
        if problem:
            raise ValueError(f"{self.key}: {problem}")


@dataclass(frozen=True)
class IndicatorScore:
    """One indicator in a scored report: the ``value`` reported (``None`` = not reported), the
    ``target`` it was scored against and its ``score`` 0..10 (``None`` when not reported).
    ``basis`` says what ``target`` is: the target in force, or (the improve rule) the previous
    quarter's figure."""

    key: str
    value: float | None
    target: float
    score: int | None
    basis: Basis = "target"
    counted: bool = True  # False: for reference, not in the area's mean nor its coverage


@dataclass(frozen=True)
class AreaScore:
    """One area in a scored report: ``score`` is the mean of its reported indicator scores
    rounded to one decimal, ``None`` when nothing was reported; ``indicators`` lists every
    indicator of the area in catalog order, reported or not."""

    area: str
    score: float | None
    indicators: tuple[IndicatorScore, ...]

    @property
    def reported(self) -> int:
        """How many of the area's counted figures were reported."""
        return sum(1 for row in self.indicators if row.value is not None and row.counted)

    @property
    def total(self) -> int:
        """How many counted figures the area has."""
        return sum(1 for row in self.indicators if row.counted)


@dataclass(frozen=True)
class KpiResult:
    """A scored report. Build it with :func:`score_report`.

    ``areas`` in catalog order; ``overall`` the mean of the reported area scores (one decimal,
    ``None`` if nothing was reported); ``weakest`` the reported area with the lowest score
    (earlier area on a tie, ``None`` if nothing was reported); ``weakest_figure`` the key of the
    indicator that pulled that area down (``None`` if none did).
    """

    areas: tuple[AreaScore, ...]
    overall: float | None
    weakest: str | None
    weakest_figure: str | None = None

    def area(self, key: str) -> AreaScore:
        """The score of one area; ``KeyError`` for an area not in this result."""
        for area in self.areas:
            if area.area == key:
                return area
        raise KeyError(key)

    def indicator(self, key: str) -> IndicatorScore:
        """The score of one indicator; ``KeyError`` for an indicator not in this result."""
        for area in self.areas:
            for row in area.indicators:
                if row.key == key:
                    return row
        raise KeyError(key)

    @property
    def reported(self) -> int:
        """How many figures were reported (coverage: ``reported`` of ``total``)."""
        return sum(area.reported for area in self.areas)

    @property
    def total(self) -> int:
        return sum(area.total for area in self.areas)


def _checked(ind: Indicator, name: str, value: object) -> float:
    if not _is_number(value):
        raise ValueError(f"{ind.key}: {name} must be a finite number, got {value!r}")
    assert isinstance(value, int | float)
    if not ind.minimum <= value <= ind.maximum:
        raise ValueError(f"{ind.key}: {name} {value} is outside {ind.minimum}..{ind.maximum}")
    return value


def target_problem(ind: Indicator, target: float) -> str | None:
    """Why ``target`` cannot be this indicator's target beyond its range (``None`` if it can): a
    scale indicator's target must lie on the better side of its floor, or nothing could score."""
    if ind.rule != "scale" or ind.floor is None:
        return None
    if ind.direction == "higher" and target <= ind.floor:
        return f"target {target} must be above the floor {ind.floor}"
    if ind.direction == "lower" and target >= ind.floor:
        return f"target {target} must be below the floor {ind.floor}"
    return None


def _checked_target(ind: Indicator, target: object) -> float:
    checked = _checked(ind, "target", target)
    problem = target_problem(ind, checked)
    if problem:
        raise ValueError(f"{ind.key}: {problem}")
    return checked


def _tenths(attainment: float) -> int:
    return min(MAX_SCORE, max(0, math.floor(round(MAX_SCORE * attainment, _NOISE_DIGITS))))


def score_indicator(ind: Indicator, value: float, target: float | None = None, previous: float | None = None) -> int:
    """Score one value 0..10 against ``target`` (default: ``ind.target``) by the indicator's rule;
    ``previous`` is the previous quarter's figure (only the improve rule uses it).

    Raises ``ValueError`` when the value, target or previous figure is not a finite number or lies
    outside ``ind.minimum``..``ind.maximum``, or the target is refused by :func:`target_problem`.
    """
    value = _checked(ind, "value", value)
    target = ind.target if target is None else _checked_target(ind, target)
    higher = ind.direction == "higher"
    if ind.rule in ("improve", "yoy") and previous is not None:
        previous = _checked(ind, "previous", previous)
        shortfall = previous - value if higher else value - previous
        if shortfall < 0:
            return MAX_SCORE
        steps = math.floor(round(shortfall / ind.step, _NOISE_DIGITS)) + 1
        return max(0, MAX_SCORE - _GAP_POINTS_PER_STEP * steps)
    if ind.rule in ("gap", "improve", "yoy"):
        shortfall = target - value if higher else value - target
        if shortfall <= 0:
            return MAX_SCORE
        steps = math.ceil(round(shortfall / ind.step, _NOISE_DIGITS))
        return max(0, MAX_SCORE - _GAP_POINTS_PER_STEP * steps)
    if ind.rule == "scale":
        assert ind.floor is not None  # checked when the indicator was built
        span = target - ind.floor if higher else ind.floor - target
        got = value - ind.floor if higher else ind.floor - value
        return MAX_SCORE if got >= span else _tenths(got / span)
    if ind.direction == "higher":
        if value >= target:  # covers a target of 0: any value attains it
            return MAX_SCORE
        tenths = MAX_SCORE * value / target
    else:
        if value <= target:  # covers a value of 0: full attainment
            return MAX_SCORE
        tenths = MAX_SCORE * target / value
    return min(MAX_SCORE, max(0, math.floor(round(tenths, _NOISE_DIGITS))))


def _round1(exact: Fraction | Decimal) -> float:
    """Round half up to one decimal; ``exact`` is a Fraction or Decimal, so nothing drifts."""
    if isinstance(exact, Fraction):
        exact = Decimal(exact.numerator) / Decimal(exact.denominator)
    return float(exact.quantize(_ONE_DECIMAL, rounding=ROUND_HALF_UP))


def _exact(x: float) -> Decimal:
    """A one-decimal score as the decimal it stands for (7.3, not 7.29999...)."""
    return Decimal(repr(x))


def _check_catalog(indicators: Sequence[Indicator], areas: Sequence[str]) -> None:
    if len(set(areas)) != len(areas):
        raise ValueError(f"duplicate area in {list(areas)}")
    if OVERALL in areas:
        raise ValueError(f"{OVERALL!r} is reserved and cannot be an area")
    keys = [ind.key for ind in indicators]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate indicator key in {keys}")
    for ind in indicators:
        if ind.area not in areas:
            raise ValueError(f"{ind.key}: area {ind.area!r} is not one of {list(areas)}")


def score_report(
    indicators: Sequence[Indicator],
    areas: Sequence[str],
    values: Mapping[str, float | None],
    targets: Mapping[str, float] | None = None,
    previous: Mapping[str, float | None] | None = None,
    year_ago: Mapping[str, float | None] | None = None,
) -> KpiResult:
    """Score one report (see the module docstring for the rules).

    ``areas`` gives the area order; every indicator's area must be in it. ``values`` maps
    indicator keys to reported values (missing or ``None`` = not reported); ``targets`` maps
    indicator keys to targets that replace the defaults; ``previous`` holds the previous quarter's
    figures (the improve rule scores against them), ``year_ago`` the same quarter's a year earlier (the
    yoy rule). Raises ``ValueError`` for duplicate areas or indicator keys, an indicator in an unknown
    area, unknown keys in ``values``, ``targets``, ``previous`` or ``year_ago``, and any value, target or
    earlier figure :func:`score_indicator` refuses.
    """
    _check_catalog(indicators, areas)
    targets = targets or {}
    known = {ind.key for ind in indicators}
    for name, given in (("values", values), ("targets", targets), ("previous", previous or {}),
                        ("year_ago", year_ago or {})):
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"{name} name unknown indicators: {', '.join(unknown)}")
    earlier: dict[str, Mapping[str, float | None]] = {"improve": previous or {}, "yoy": year_ago or {}}
    area_scores = [_score_area(area, indicators, values, targets, earlier) for area in areas]
    scored = [(a.area, a.score) for a in area_scores if a.score is not None]
    if not scored:
        return KpiResult(areas=tuple(area_scores), overall=None, weakest=None)
    overall = _round1(sum((_exact(s) for _, s in scored), Decimal(0)) / len(scored))
    weakest = min(scored, key=lambda pair: pair[1])[0]  # min() keeps the first of equal scores
    rows = [row for a in area_scores if a.area == weakest for row in a.indicators
            if row.score is not None and row.counted]
    lowest = min(rows, key=lambda row: row.score or 0)  # the area has a score, so a row was scored
    figure = lowest.key if lowest.score is not None and lowest.score < MAX_SCORE else None
    return KpiResult(areas=tuple(area_scores), overall=overall, weakest=weakest, weakest_figure=figure)


def _score_area(area: str, indicators: Sequence[Indicator], values: Mapping[str, float | None],
                targets: Mapping[str, float], earlier: Mapping[str, Mapping[str, float | None]]) -> AreaScore:
    """One area: its indicators scored (a retired one only when reported), the mean of the counted."""
    rows: list[IndicatorScore] = []
    for ind in indicators:
        value = values.get(ind.key)
        if ind.area != area or (ind.retired and value is None):
            continue
        target = ind.target if targets.get(ind.key) is None else _checked_target(ind, targets[ind.key])
        before = earlier.get(ind.rule, {}).get(ind.key)
        if before is not None:
            before = _checked(ind, "previous", before)
        score = None if value is None else score_indicator(ind, value, target, before)
        if before is None:
            rows.append(IndicatorScore(ind.key, value, target, score, counted=ind.counted))
        else:
            basis: Basis = "previous" if ind.rule == "improve" else "year"
            rows.append(IndicatorScore(ind.key, value, before, score, basis, counted=ind.counted))
    reported = [row.score for row in rows if row.score is not None and row.counted]
    mean = _round1(Fraction(sum(reported), len(reported))) if reported else None
    return AreaScore(area=area, score=mean, indicators=tuple(rows))


def missing_required(indicators: Sequence[Indicator], values: Mapping[str, float | None]) -> tuple[str, ...]:
    """Keys of required indicators that ``values`` does not report (missing or ``None``), in
    catalog order. Scoring does not need them; the conversation that collects a report does."""
    return tuple(ind.key for ind in indicators if ind.required and not ind.retired and values.get(ind.key) is None)


def compare(current: KpiResult, previous: KpiResult | None) -> dict[str, float | None]:
    """The change from ``previous`` to ``current``: one entry per area of ``current`` (in its
    order) and ``"overall"``, each ``current - previous`` rounded to one decimal, or ``None``
    where either side is not reported (an area missing from ``previous`` counts as not reported;
    ``previous=None`` makes every entry ``None``)."""
    before: dict[str, float | None] = {}
    if previous is not None:
        before = {a.area: a.score for a in previous.areas}
        before[OVERALL] = previous.overall
    now: dict[str, float | None] = {a.area: a.score for a in current.areas}
    now[OVERALL] = current.overall
    change: dict[str, float | None] = {}
    for key, score in now.items():
        old = before.get(key)
        change[key] = None if score is None or old is None else _round1(_exact(score) - _exact(old))
    return change
