"""Tests for scoring.kpi: the gap and ratio rules, range checks, area/overall/weakest, compare."""

import dataclasses
import math

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scoring import kpi
from scoring.kpi import (
    OVERALL,
    AreaScore,
    Indicator,
    IndicatorScore,
    KpiResult,
    compare,
    missing_required,
    score_indicator,
    score_report,
)

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)


def ind(key: str = "x", area: str = "a", **over: object) -> Indicator:
    fields: dict[str, object] = {
        "direction": "higher",
        "unit": "%",
        "minimum": 0,
        "maximum": 100,
        "target": 95,
        "rule": "gap",
        "step": 5,
    }
    fields.update(over)
    return Indicator(key=key, area=area, **fields)  # type: ignore[arg-type]


COMPLETE = ind("complete", "data", target=95, step=5, required=True)  # the domain example
DUPLICATES = ind("dupes", "data", direction="lower", target=2, step=1)
LEADS = ind("leads", "roi", rule="ratio", unit="件", maximum=10_000, target=300, required=True)
HOURS = ind("hours", "eff", rule="ratio", direction="lower", unit="時間", maximum=200, target=2, required=True)
NPS = ind("nps", "sat", minimum=-100, maximum=100, target=30, step=10)
CATALOG = (COMPLETE, DUPLICATES, LEADS, HOURS, NPS)
AREAS = ("data", "roi", "eff", "sat")


# --- the gap rule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(100, 10), (97.5, 10), (95, 10), (94.9, 8), (94, 8), (90, 8), (89.9, 6), (85, 6), (84.99, 4),
     (80, 4), (75, 2), (74.9, 0), (70, 0), (0, 0)],
)  # fmt: skip
def test_domain_example_completeness(value: float, expected: int) -> None:
    """95%+ complete scores 10, 90-94% scores 8 (domain.md), and every started 5 points below costs 2."""
    assert score_indicator(COMPLETE, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 10), (2, 10), (2.1, 8), (3, 8), (3.5, 6), (4, 6), (6.5, 0), (100, 0)]
)
def test_gap_lower_is_better(value: float, expected: int) -> None:
    assert score_indicator(DUPLICATES, value) == expected


def test_gap_with_negative_range() -> None:
    assert score_indicator(NPS, 30) == 10
    assert score_indicator(NPS, 25) == 8
    assert score_indicator(NPS, -5) == 2
    assert score_indicator(NPS, -100) == 0


def test_gap_ignores_float_noise() -> None:
    dupes = ind(direction="lower", minimum=0, maximum=1, target=0.1, step=0.1)
    assert score_indicator(dupes, 0.1 + 0.2) == 6  # 0.30000000000000004 is two steps over, not three


# --- the ratio rule -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"), [(300, 10), (10_000, 10), (299, 9), (270, 9), (269.9, 8), (210, 7), (29, 0), (0, 0)]
)
def test_ratio_higher_is_better(value: float, expected: int) -> None:
    assert score_indicator(LEADS, value) == expected


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 10), (1, 10), (2, 10), (2.1, 9), (2.5, 8), (4, 5), (20, 1), (21, 0), (200, 0)]
)
def test_ratio_lower_is_better(value: float, expected: int) -> None:
    assert score_indicator(HOURS, value) == expected


def test_ratio_zero_targets() -> None:
    assert score_indicator(LEADS, 0, target=0) == 10  # a higher-is-better target of 0: any value attains it
    assert score_indicator(LEADS, 5, target=0) == 10
    assert score_indicator(HOURS, 0, target=0) == 10  # 0 when lower is better is full attainment
    assert score_indicator(HOURS, 0.5, target=0) == 0


def test_ratio_exact_tenths() -> None:
    rate = ind(rule="ratio", target=30)
    assert score_indicator(rate, 21) == 7  # 21/30 is 0.7: exactly 7, not 6 by float error
    assert score_indicator(rate, 0.7 * 30) == 7


def test_explicit_target_replaces_default() -> None:
    assert score_indicator(COMPLETE, 90) == 8
    assert score_indicator(COMPLETE, 90, target=90) == 10
    assert score_indicator(COMPLETE, 90, target=100) == 6
    assert score_indicator(LEADS, 300, target=600) == 5


# --- input checks -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-0.1, 100.1, -1e9])
def test_value_outside_range_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match=r"complete: value .* outside 0\.\.100"):
        score_indicator(COMPLETE, bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "90", None])
def test_value_must_be_a_finite_number(bad: object) -> None:
    with pytest.raises(ValueError, match=r"complete: value must be a finite number"):
        score_indicator(COMPLETE, bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [101, -1, math.nan])
def test_explicit_target_is_checked(bad: float) -> None:
    with pytest.raises(ValueError, match=r"complete: target"):
        score_indicator(COMPLETE, 90, target=bad)


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"key": ""}, "key must be a non-empty string"),
        ({"area": None}, "area must be a non-empty string"),
        ({"direction": "up"}, "direction must be one of higher, lower"),
        ({"rule": "linear"}, "rule must be one of gap, ratio, scale, improve"),
        ({"rule": "scale"}, "the scale rule needs a floor"),
        ({"rule": "scale", "floor": -1}, "floor -1 is outside 0..100"),
        ({"rule": "scale", "floor": 95}, "target 95 must be above the floor 95"),
        ({"rule": "scale", "direction": "lower", "floor": 90}, "target 95 must be below the floor 90"),
        ({"rule": "gap", "floor": 1}, "only the scale rule has a floor"),
        ({"minimum": math.nan}, "minimum must be a finite number"),
        ({"target": True}, "target must be a finite number"),
        ({"minimum": 100, "maximum": 100}, "minimum 100 must be below maximum 100"),
        ({"rule": "ratio", "minimum": -1}, "ratio rule needs a minimum of 0"),
        ({"target": 101}, "target 101 is outside 0..100"),
        ({"step": 0}, "step must be above 0"),
    ],
)
def test_inconsistent_indicator_is_refused(over: dict[str, object], message: str) -> None:
    fields = {"key": "x", "area": "a", **over}
    with pytest.raises(ValueError, match=message):
        ind(**fields)  # type: ignore[arg-type]


def test_indicator_defaults_and_immutability() -> None:
    i = Indicator("k", "a", "higher", "%", 0, 100, 50, "gap")
    assert (i.step, i.required) == (5.0, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        i.target = 10  # type: ignore[misc]


# --- score_report -------------------------------------------------------------------------------


def test_area_is_mean_of_reported_indicators_only() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 90, "leads": 300})
    data = r.area("data")
    assert data.score == 8.0  # dupes not reported: not counted as 0
    assert data.indicators == (
        IndicatorScore(key="complete", value=90, target=95, score=8),
        IndicatorScore(key="dupes", value=None, target=2, score=None),
    )
    r2 = score_report(CATALOG, AREAS, {"complete": 90, "dupes": 3.5})
    assert r2.area("data").score == 7.0  # (8 + 6) / 2


def test_area_mean_rounds_half_up_to_one_decimal() -> None:
    # ratio indicators with target 10: a value v below 10 scores floor(v)
    tenths = tuple(ind(f"t{n}", "ab"[n // 4], rule="ratio", target=10) for n in range(8))
    a = {"t0": 9, "t1": 8, "t2": 8, "t3": 8}  # 33 / 4 = 8.25
    assert score_report(tenths, ("a", "b"), a).area("a").score == 8.3  # half up; round() would give 8.2
    a = {"t0": 7, "t1": 7, "t2": 7, "t3": 8}  # 29 / 4 = 7.25
    assert score_report(tenths, ("a", "b"), a).area("a").score == 7.3
    a = {"t0": 9, "t1": 9, "t2": 8}  # 26 / 3 = 8.666...
    assert score_report(tenths, ("a", "b"), a).area("a").score == 8.7
    b = {"t4": 8, "t5": 8, "t6": 9, "t7": 9}  # 8.5
    r = score_report(tenths, ("a", "b"), {"t0": 8, **b})  # (8.0 + 8.5) / 2 = 8.25
    assert r.overall == 8.3


def test_unreported_area_is_none_not_zero() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 95, "leads": None})
    assert r.area("roi").score is None
    assert r.area("eff") == AreaScore(
        area="eff", score=None, indicators=(IndicatorScore(key="hours", value=None, target=2, score=None),)
    )
    assert r.overall == 10.0  # the unreported areas do not drag the mean down
    assert r.weakest == "data"


def test_nothing_reported() -> None:
    r = score_report(CATALOG, AREAS, {})
    assert isinstance(r, KpiResult)
    assert r.overall is None
    assert r.weakest is None
    assert [a.area for a in r.areas] == list(AREAS)
    assert all(a.score is None for a in r.areas)


def test_area_without_indicators_is_not_reported() -> None:
    r = score_report((COMPLETE,), ("data", "empty"), {"complete": 90})
    assert r.area("empty") == AreaScore(area="empty", score=None, indicators=())


def test_overall_is_mean_of_reported_areas() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 90, "dupes": 3.5, "leads": 150, "hours": 2})
    assert [a.score for a in r.areas] == [7.0, 5.0, 10.0, None]
    assert r.overall == round((7 + 5 + 10) / 3, 1) == 7.3
    assert r.weakest == "roi"


def test_areas_follow_catalog_order_not_indicator_order() -> None:
    r = score_report(tuple(reversed(CATALOG)), AREAS, {"nps": 30, "complete": 95})
    assert tuple(a.area for a in r.areas) == AREAS


def test_weakest_tie_goes_to_the_earlier_area() -> None:
    values = {"complete": 90, "leads": 240, "hours": 2.5, "nps": 30}  # data 8, roi 8, eff 8, sat 10
    r = score_report(CATALOG, AREAS, values)
    assert [a.score for a in r.areas] == [8.0, 8.0, 8.0, 10.0]
    assert r.weakest == "data"
    r = score_report(CATALOG, ("sat", "eff", "roi", "data"), values)
    assert r.weakest == "eff"
    r = score_report(CATALOG, AREAS, {**values, "complete": 95})  # data now 10: roi is first of the 8s
    assert r.weakest == "roi"


def test_targets_override_defaults() -> None:
    values = {"complete": 90, "leads": 300}
    r = score_report(CATALOG, AREAS, values, targets={"complete": 90, "leads": 600})
    assert r.area("data").indicators[0] == IndicatorScore(key="complete", value=90, target=90, score=10)
    assert r.area("roi").indicators[0] == IndicatorScore(key="leads", value=300, target=600, score=5)
    assert r.area("data").indicators[1].target == 2  # not overridden: the default
    assert score_report(CATALOG, AREAS, values, targets=None).area("roi").score == 10.0


def test_override_target_is_checked() -> None:
    with pytest.raises(ValueError, match=r"complete: target 120 is outside"):
        score_report(CATALOG, AREAS, {}, targets={"complete": 120})


def test_reported_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"dupes: value 150 is outside"):
        score_report(CATALOG, AREAS, {"dupes": 150})


@pytest.mark.parametrize(
    ("indicators", "areas", "values", "targets", "message"),
    [
        (CATALOG, AREAS, {"complet": 90}, None, "values name unknown indicators: complet"),
        (CATALOG, AREAS, {}, {"lead": 5, "hour": 1}, "targets name unknown indicators: hour, lead"),
        (CATALOG, ("data", "roi", "data", "eff", "sat"), {}, None, "duplicate area"),
        (CATALOG, (*AREAS, OVERALL), {}, None, "'overall' is reserved"),
        ((COMPLETE, COMPLETE), ("data",), {}, None, "duplicate indicator key"),
        (CATALOG, ("data", "roi", "eff"), {}, None, "nps: area 'sat' is not one of"),
    ],
)
def test_score_report_refuses_inconsistent_input(
    indicators: tuple[Indicator, ...],
    areas: tuple[str, ...],
    values: dict[str, float],
    targets: dict[str, float] | None,
    message: str,
) -> None:
    with pytest.raises(ValueError, match=message):
        score_report(indicators, areas, values, targets)


def test_kpi_result_area_lookup() -> None:
    r = score_report(CATALOG, AREAS, {})
    assert r.area("sat").area == "sat"
    with pytest.raises(KeyError):
        r.area("nope")


def test_results_are_frozen_and_hashable() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 90})
    assert r == score_report(CATALOG, AREAS, {"complete": 90})
    assert hash(r) == hash(score_report(CATALOG, AREAS, {"complete": 90}))
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.overall = 1.0  # type: ignore[misc]


def test_missing_required() -> None:
    assert missing_required(CATALOG, {}) == ("complete", "leads", "hours")
    assert missing_required(CATALOG, {"complete": 90, "leads": None, "dupes": 1}) == ("leads", "hours")
    assert missing_required(CATALOG, {"complete": 0, "leads": 0, "hours": 0}) == ()


# --- compare ------------------------------------------------------------------------------------


def test_compare_changes_per_area_and_overall() -> None:
    before = score_report(CATALOG, AREAS, {"complete": 85, "leads": 150, "nps": 30})  # 6, 5, -, 10
    after = score_report(CATALOG, AREAS, {"complete": 95, "leads": 120, "hours": 4})  # 10, 4, 5, -
    assert compare(after, before) == {
        "data": 4.0,
        "roi": -1.0,
        "eff": None,  # not reported before
        "sat": None,  # not reported now
        OVERALL: round(6.3 - 7.0, 1),
    }
    assert list(compare(after, before)) == [*AREAS, OVERALL]


def test_compare_is_exact_on_one_decimal_scores() -> None:
    a = ind("a1", "a")
    b = ind("a2", "a")
    c = ind("a3", "a")
    before = score_report((a, b, c), ("a",), {"a1": 95, "a2": 90, "a3": 85})  # 8.0
    after = score_report((a, b, c), ("a",), {"a1": 95, "a2": 90, "a3": 90})  # 8.7
    assert compare(after, before) == {"a": 0.7, OVERALL: 0.7}  # not 0.6999999999999993
    assert compare(before, after) == {"a": -0.7, OVERALL: -0.7}


def test_compare_without_previous_or_with_nothing_reported() -> None:
    now = score_report(CATALOG, AREAS, {"complete": 95})
    assert compare(now, None) == dict.fromkeys([*AREAS, OVERALL])
    assert compare(now, score_report(CATALOG, AREAS, {})) == dict.fromkeys([*AREAS, OVERALL])
    assert compare(score_report(CATALOG, AREAS, {}), now) == dict.fromkeys([*AREAS, OVERALL])


def test_compare_with_different_areas() -> None:
    now = score_report((COMPLETE, NPS), ("data", "sat"), {"complete": 95, "nps": 30})
    old = score_report((COMPLETE, LEADS), ("data", "roi"), {"complete": 90, "leads": 300})
    assert compare(now, old) == {"data": 2.0, "sat": None, OVERALL: 1.0}


# --- properties ---------------------------------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)


@st.composite
def indicators(draw: st.DrawFn) -> Indicator:
    rule = draw(st.sampled_from(kpi.RULES))
    low = draw(st.floats(min_value=0 if rule == "ratio" else -1e6, max_value=1e6))
    high = draw(st.floats(min_value=low, max_value=2e6).filter(lambda h: h > low))
    target = draw(st.floats(min_value=low, max_value=high))
    step = draw(st.floats(min_value=1e-3, max_value=1e3))
    direction = draw(st.sampled_from(kpi.DIRECTIONS))
    floor = None
    if rule == "scale":  # the floor lies on the worse side of the target
        worse = (low, target) if direction == "higher" else (target, high)
        assume(worse[0] < worse[1])
        floor = draw(st.floats(min_value=worse[0], max_value=worse[1]).filter(lambda f: f != target))
    return Indicator("k", "a", direction, "u", low, high, target, rule, step, floor=floor)


@given(indicators(), st.data())
def test_scores_are_integers_within_0_to_10_and_monotonic(indicator: Indicator, data: st.DataObject) -> None:
    in_range = st.floats(min_value=indicator.minimum, max_value=indicator.maximum)
    v1, v2 = data.draw(in_range), data.draw(in_range)
    previous = data.draw(st.one_of(st.none(), in_range))  # the improve rule's baseline, if any
    worse, better = sorted((v1, v2)) if indicator.direction == "higher" else sorted((v1, v2), reverse=True)
    s_worse = score_indicator(indicator, worse, previous=previous)
    s_better = score_indicator(indicator, better, previous=previous)
    assert isinstance(s_worse, int)
    assert 0 <= s_worse <= 10
    assert 0 <= s_better <= 10
    assert s_better >= s_worse


@given(indicators())
def test_meeting_the_target_scores_10(indicator: Indicator) -> None:
    assert score_indicator(indicator, indicator.target) == 10
    best = indicator.maximum if indicator.direction == "higher" else indicator.minimum
    assert score_indicator(indicator, best) == 10


@given(st.lists(st.one_of(st.none(), st.floats(min_value=0, max_value=100)), min_size=4, max_size=4))
def test_report_scores_stay_within_0_to_10(raw: list[float | None]) -> None:
    cat = tuple(ind(f"i{n}", "ab"[n % 2]) for n in range(4))
    values = {f"i{n}": v for n, v in enumerate(raw)}
    r = score_report(cat, ("a", "b"), values)
    reported = [a.score for a in r.areas if a.score is not None]
    assume(reported)
    assert r.overall is not None
    assert all(0 <= s <= 10 for s in reported)
    assert min(reported) <= r.overall <= max(reported)
    assert r.area(r.weakest or "").score == min(reported)


# --- the scale rule: a rating scale whose bottom is not zero --------------------------------------

SATISFACTION = ind("sat", "s", rule="scale", unit="点", minimum=1, maximum=5, target=4.2, floor=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, 0), (1.3, 0), (1.32, 1), (2.0, 3), (3.0, 6), (4.0, 9), (4.19, 9), (4.2, 10), (5.0, 10)],
)
def test_scale_bottom_scores_zero_and_the_target_ten(value: float, expected: int) -> None:
    """1-5 survey, target 4.2: the worst answer (1.0) scores 0, not 2 as the ratio rule gave."""
    assert score_indicator(SATISFACTION, value) == expected


def test_scale_with_a_team_target() -> None:
    assert score_indicator(SATISFACTION, 3.0, target=3.0) == 10
    assert score_indicator(SATISFACTION, 2.0, target=3.0) == 5
    with pytest.raises(ValueError, match="must be above the floor 1"):
        score_indicator(SATISFACTION, 2.0, target=1)
    with pytest.raises(ValueError, match="must be above the floor 1"):
        score_report((SATISFACTION,), ("s",), {"sat": 2.0}, {"sat": 1})
    assert kpi.target_problem(SATISFACTION, 1) is not None and kpi.target_problem(SATISFACTION, 1.1) is None
    assert kpi.target_problem(COMPLETE, 0) is None  # only the scale rule has a floor


def test_scale_lower_is_better() -> None:
    wait = ind("wait", "s", rule="scale", direction="lower", unit="分", minimum=0, maximum=60, target=5, floor=45)
    assert [score_indicator(wait, v) for v in (60, 45, 25, 5, 0)] == [0, 0, 5, 10, 10]


# --- the improve rule: better than the last quarter -----------------------------------------------

NPS_TREND = ind("nps", "s", rule="improve", unit="pt", minimum=-100, maximum=100, target=0, step=5)


@pytest.mark.parametrize(
    ("value", "previous", "expected"),
    [(-19, -20, 10), (-20, -20, 8), (-22, -20, 8), (-25, -20, 6), (-30, -20, 4), (-40, -20, 0), (50, -20, 10)],
)
def test_improve_is_scored_against_the_previous_quarter(value: float, previous: float, expected: int) -> None:
    """Beating last quarter scores 10; holding it is one step short (8); each started 5 points below
    costs 2 more, whatever the target (0)."""
    assert score_indicator(NPS_TREND, value, previous=previous) == expected


def test_improve_without_a_previous_figure_is_scored_against_the_target() -> None:
    assert score_indicator(NPS_TREND, 0) == 10
    assert score_indicator(NPS_TREND, -3) == 8
    assert score_indicator(NPS_TREND, -12) == 4


def test_improve_in_a_report_names_its_basis() -> None:
    cat = (NPS_TREND, SATISFACTION)
    now = score_report(cat, ("s",), {"nps": -20, "sat": 4.2}, previous={"nps": -20, "sat": 3.0})
    assert now.indicator("nps") == IndicatorScore("nps", -20, -20, 8, basis="previous")
    assert now.indicator("sat") == IndicatorScore("sat", 4.2, 4.2, 10)  # other rules ignore the previous figure
    first = score_report(cat, ("s",), {"nps": -20, "sat": 4.2}, previous={"nps": None})
    assert first.indicator("nps") == IndicatorScore("nps", -20, 0, 2)  # against the target: 4 steps short
    with pytest.raises(ValueError, match="previous name unknown indicators: zzz"):
        score_report(cat, ("s",), {}, previous={"zzz": 1})
    with pytest.raises(ValueError, match="previous 200 is outside"):
        score_report(cat, ("s",), {"nps": 1}, previous={"nps": 200})


def test_improve_lower_is_better() -> None:
    hours = ind("h", "e", rule="improve", direction="lower", unit="時間", minimum=0, maximum=200, target=10, step=2)
    assert [score_indicator(hours, v, previous=10) for v in (9.9, 10, 11.9, 12, 30)] == [10, 8, 8, 6, 0]


# --- coverage and the figure that pulled the weakest area down -------------------------------------


def test_coverage_counts_reported_figures() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 90, "leads": 300, "nps": None})
    assert [(a.area, a.reported, a.total) for a in r.areas] == [("data", 1, 2), ("roi", 1, 1), ("eff", 0, 1),
                                                                ("sat", 0, 1)]
    assert (r.reported, r.total) == (2, 5)


def test_the_weakest_figure_is_the_lowest_of_the_weakest_area() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 85, "dupes": 4, "leads": 300})  # data (6 + 6) / 2, roi 10
    assert (r.weakest, r.weakest_figure) == ("data", "complete")  # a tie: the earlier figure
    r = score_report(CATALOG, AREAS, {"complete": 95, "dupes": 4, "leads": 300})
    assert (r.weakest, r.weakest_figure) == ("data", "dupes")
    assert r.indicator("dupes") == IndicatorScore("dupes", 4, 2, 6)
    with pytest.raises(KeyError):
        r.indicator("nope")


def test_no_weakest_figure_when_nothing_pulled_the_area_down() -> None:
    r = score_report(CATALOG, AREAS, {"complete": 99, "leads": 300})
    assert (r.weakest, r.weakest_figure) == ("data", None)
    assert score_report(CATALOG, AREAS, {}).weakest_figure is None


# ---- the yoy rule, reference and retired indicators ------------------------------------------------

SAVED = Indicator("saved", "eff", "higher", "%", -1000, 100, 50, "yoy", step=10)
OPEN = Indicator("open", "eff", "higher", "%", 0, 100, 30, "ratio", counted=False)
OLD = Indicator("old", "eff", "higher", "%", 0, 100, 30, "ratio", retired=True)
BASE_IND = Indicator("base", "eff", "higher", "%", 0, 100, 80, "gap", step=10, required=True)


def test_yoy_scores_the_first_year_against_the_target_then_against_the_same_quarter_last_year() -> None:
    # the first year: 60% saved meets the target of 50%
    first = score_report([SAVED], ["eff"], {"saved": 60})
    assert first.indicator("saved") == IndicatorScore("saved", 60, 50, 10)
    # a year on, holding 60% no longer scores 10 for ever: holding 8, beating it 10, each started 10 worse -2
    year_ago = {"saved": 60.0}
    assert score_report([SAVED], ["eff"], {"saved": 60}, year_ago=year_ago).indicator("saved") == IndicatorScore(
        "saved", 60, 60.0, 8, "year")
    assert score_report([SAVED], ["eff"], {"saved": 61}, year_ago=year_ago).indicator("saved").score == 10
    assert score_report([SAVED], ["eff"], {"saved": 45}, year_ago=year_ago).indicator("saved").score == 6
    # the last quarter's figure is not what it is measured against
    assert score_report([SAVED], ["eff"], {"saved": 60}, previous={"saved": 90}).indicator("saved").score == 10


def test_a_reference_indicator_is_shown_but_not_in_the_mean_nor_the_coverage() -> None:
    result = score_report([BASE_IND, OPEN], ["eff"], {"base": 60, "open": 3})
    area = result.area("eff")
    assert area.score == 6.0 and (area.reported, area.total) == (1, 1)
    assert result.indicator("open") == IndicatorScore("open", 3, 30, 1, counted=False)
    assert result.weakest_figure == "base"  # not the reference figure, though it scores lower


def test_a_retired_indicator_scores_a_report_that_has_it_and_is_absent_from_one_that_does_not() -> None:
    old_report = score_report([BASE_IND, OLD], ["eff"], {"base": 80, "old": 15})
    assert old_report.area("eff").score == 7.5 and old_report.area("eff").total == 2  # as it was scored then
    new_report = score_report([BASE_IND, OLD], ["eff"], {"base": 80})
    assert [row.key for row in new_report.area("eff").indicators] == ["base"]
    assert missing_required([BASE_IND, OLD], {}) == ("base",)
    with pytest.raises(ValueError, match="retired"):
        Indicator("x", "eff", "higher", "%", 0, 100, 30, "ratio", required=True, retired=True)
