"""Tests for conversations.kpi_catalog: the shipped catalog loads; every malformed file is refused by name."""

import copy
import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from conversations.errors import ConfigError, ContentError
from conversations.kpi_catalog import AREA_KEYS, CATALOG_PATH, DEFINITION_MAX, NAME_MAX, Area, Catalog, load_catalog
from scoring.kpi import Indicator, score_indicator

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

DOMAIN_AREA_NAMES = {
    "engagement": ("ユーザー参加度", "User engagement"),
    "data_quality": ("データ品質", "Data quality"),
    "satisfaction": ("顧客満足度", "Customer satisfaction"),
    "roi": ("投資収益率（ROI）", "ROI"),
    "efficiency": ("プロセス効率", "Process efficiency"),
}


def real_data() -> dict[str, Any]:
    return tomllib.loads(CATALOG_PATH.read_text(encoding="utf-8"))


# --- a tiny TOML writer: nested values as inline tables ---------------------------------------------


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v != v:
        return "nan"
    if isinstance(v, float) and v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def write(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "kpi.toml"
    path.write_text("".join(f"{json.dumps(k)} = {_toml_value(v)}\n" for k, v in data.items()), encoding="utf-8")
    return path


def load(path: Path) -> Catalog:
    return load_catalog.__wrapped__(str(path))  # bypass the cache: each test has its own file


# --- the shipped catalog ------------------------------------------------------------------------


def test_shipped_catalog_has_the_five_domain_areas_in_order() -> None:
    c = load_catalog()
    assert c.path == str(CATALOG_PATH)
    assert c.area_keys == AREA_KEYS == ("engagement", "data_quality", "satisfaction", "roi", "efficiency")
    for area in c.areas:
        assert (area.name_ja, area.name_en) == DOMAIN_AREA_NAMES[area.key]
        assert (c.name(area.key, "ja"), c.name(area.key, "en")) == DOMAIN_AREA_NAMES[area.key]
        assert c.area(area.key) is area


def test_shipped_catalog_areas_list_their_indicators() -> None:
    c = load_catalog()
    assert [i.key for i in c.indicators if not i.retired] == [k for a in c.areas for k in a.indicator_keys]
    assert {a.key: len(a.indicator_keys) for a in c.areas} == {
        "engagement": 3, "data_quality": 2, "satisfaction": 3, "roi": 8, "efficiency": 2
    }
    # kept, not asked for: reports stored with them still score as they did
    assert [(i.key, i.area) for i in c.indicators if i.retired] == [("resolution_hours", "satisfaction"),
                                                                   ("open_rate", "roi")]
    for area in c.areas:
        own = [c.indicator(k) for k in area.indicator_keys]
        assert all(i.area == area.key for i in own)
        assert any(i.required for i in own), area.key


def test_every_default_target_scores_10_against_itself() -> None:
    c = load_catalog()
    assert len(c.indicators) >= 10
    for i in c.indicators:
        assert score_indicator(i, i.target) == 10, i.key


GROWTH = ("repeat_sales_growth", "ltv_growth")  # against a year earlier: -100% (nothing) and up
SAVED = ("report_time_saved", "entry_time_saved")  # against a baseline: at most 100%, negative if slower


def test_shipped_indicators_are_sensible() -> None:
    c = load_catalog()
    for i in c.indicators:
        assert len(c.name(i.key, "ja")) <= NAME_MAX["ja"]
        assert len(c.name(i.key, "en")) <= NAME_MAX["en"]
        if i.key in GROWTH:
            assert (i.unit, i.minimum, i.direction) == ("%", -100, "higher"), i.key
        elif i.key in SAVED:
            assert (i.unit, i.maximum, i.direction) == ("%", 100, "higher"), i.key
        elif i.unit == "%":
            assert (i.minimum, i.maximum) == (0, 100), i.key
    complete = c.indicator("complete_records")  # the domain example: 95%+ scores 10, 90-94% scores 8
    assert (complete.rule, complete.direction, complete.target, complete.step) == ("gap", "higher", 95, 5)
    assert [score_indicator(complete, v) for v in (100, 95, 94, 90, 89)] == [10, 10, 8, 8, 6]
    dupes = c.indicator("duplicate_records")
    assert (dupes.rule, dupes.direction, dupes.target, dupes.step) == ("gap", "lower", 2, 1)


def test_satisfaction_on_a_one_to_five_scale() -> None:
    """The bottom of the scale scores 0 and the target 10 (the ratio rule gave 1.0 two points, 3.0 seven)."""
    sat = load_catalog().indicator("satisfaction_score")
    assert (sat.rule, sat.floor, sat.minimum, sat.maximum, sat.target) == ("scale", 1, 1, 5, 4.2)
    assert [score_indicator(sat, v) for v in (1.0, 2.0, 3.0, 4.0, 4.2, 5.0)] == [0, 3, 6, 9, 10, 10]


def test_nps_target_is_zero() -> None:
    """Japanese NPS is usually far below Western figures, often negative: +30 was unrealistic."""
    nps = load_catalog().indicator("nps")
    assert (nps.minimum, nps.maximum, nps.rule, nps.target, nps.step) == (-100, 100, "gap", 0, 10)
    assert [score_indicator(nps, v) for v in (0, -5, -10, -30, 20)] == [10, 8, 8, 4, 10]


def test_roi_is_growth_and_mail_order_conversions_not_counts() -> None:
    c = load_catalog()
    roi = c.area("roi").indicator_keys
    assert roi == ("repeat_sales_growth", "ltv_growth", "f2_rate", "trial_conversion", "campaign_conversion",
                   "cost_return", "email_open_rate", "line_open_rate")
    assert all(c.unit(k, "ja") == "%" == c.unit(k, "en") for k in roi if k != "cost_return")
    assert (c.unit("cost_return", "ja"), c.unit("cost_return", "en")) == ("倍", "x")  # the cost is in ROI
    assert c.indicator("repeat_sales_growth").required
    assert "90" in c.definition("f2_rate", "ja") and "90 days" in c.definition("f2_rate", "en")
    # open rates by channel, for reference: out of the ROI mean
    assert "LINE" in c.name("line_open_rate", "ja") and "メール" in c.name("email_open_rate", "ja")
    assert [k for k in roi if not c.indicator(k).counted] == ["email_open_rate", "line_open_rate"]
    result = c.score({"repeat_sales_growth": -20, "email_open_rate": 90, "line_open_rate": 90})
    assert result.area("roi").score == 0.0 and (result.area("roi").reported, result.area("roi").total) == (1, 6)
    assert result.indicator("line_open_rate").score == 10 and result.weakest_figure == "repeat_sales_growth"


def test_every_indicator_has_units_and_a_one_line_definition_per_locale() -> None:
    c = load_catalog()
    for i in c.indicators:
        assert c.unit(i.key, "ja") == i.unit
        for loc in ("ja", "en"):
            definition = c.definition(i.key, loc)
            assert 20 <= len(definition) <= DEFINITION_MAX[loc] and "\n" not in definition, (i.key, loc)
            assert "÷" in definition, (i.key, loc)  # numerator ÷ denominator
            name, unit = c.name(i.key, loc), c.unit(i.key, loc)
            assert all(part not in name for part in unit.split("/")), (i.key, loc)  # the unit said once
    assert "暦の時間" in c.definition("resolution_hours", "ja")  # clock hours, said so
    assert "clock hours" in c.definition("resolution_hours", "en")
    assert "作業した時間" in c.definition("report_time_saved", "ja")  # working hours, said so


def test_catalog_lookups() -> None:
    c = load_catalog()
    assert c.name("complete_records", "ja") != c.name("complete_records", "en")
    assert c.name("roi") == "投資収益率（ROI）"  # ja by default
    with pytest.raises(KeyError):
        c.indicator("nope")
    with pytest.raises(KeyError):
        c.area("nope")
    with pytest.raises(KeyError):
        c.name("nope", "ja")
    with pytest.raises(KeyError):
        c.name("roi", "fr")


def test_catalog_scores_a_report() -> None:
    c = load_catalog()
    r = c.score({"complete_records": 92, "report_time_saved": 30}, targets={"report_time_saved": 30})
    assert [a.score for a in r.areas] == [None, 8.0, None, None, 10.0]
    assert r.overall == 9.0
    assert (r.weakest, r.weakest_figure) == ("data_quality", "complete_records")
    assert (r.reported, r.total) == (2, 16)


def test_catalog_scores_nps_against_the_last_quarter_when_its_rule_says_so(tmp_path: Path) -> None:
    data = real_data()
    nps = ind(data, 3, 2)
    assert nps["key"] == "nps"
    nps["rule"] = "improve"
    c = load(write(tmp_path, data))
    assert c.indicator("nps").rule == "improve"
    assert c.score({"nps": -15}, previous={"nps": -20}).indicator("nps").score == 10
    assert c.score({"nps": -20}, previous={"nps": -20}).indicator("nps").score == 8
    assert c.score({"nps": -35}, previous={"nps": -20}).indicator("nps").score == 6  # a step and a half below
    assert c.score({"nps": -40}, previous={"nps": -20}).indicator("nps").score == 4
    assert c.score({"nps": -15}).indicator("nps").score == 6  # no last quarter: against the target 0


def test_catalog_is_cached_and_frozen() -> None:
    assert load_catalog() is load_catalog()
    c = load_catalog()
    assert isinstance(c.areas[0], Area)
    assert isinstance(c.indicators[0], Indicator)
    with pytest.raises(AttributeError):
        c.areas = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        c.names["roi"]["ja"] = "x"  # type: ignore[index]


def test_rewritten_copy_loads_the_same(tmp_path: Path) -> None:
    """Sanity check of the test's TOML writer: an unchanged copy loads to the same catalog."""
    c = load(write(tmp_path, real_data()))
    shipped = load_catalog()
    assert (c.areas, c.indicators) == (shipped.areas, shipped.indicators)
    assert {k: dict(v) for k, v in c.names.items()} == {k: dict(v) for k, v in shipped.names.items()}


def test_target_may_sit_on_either_end_of_the_range(tmp_path: Path) -> None:
    data = real_data()
    data["areas"][1]["indicators"][0]["target"] = 100
    data["areas"][1]["indicators"][1]["target"] = 0
    c = load(write(tmp_path, data))
    assert c.indicator("complete_records").target == 100
    assert c.indicator("duplicate_records").target == 0


# --- malformed files ----------------------------------------------------------------------------


def ind(data: dict[str, Any], area: int, n: int) -> dict[str, Any]:
    """The n-th indicator (1-based) of the area-th area (1-based), as in the error's field path."""
    return data["areas"][area - 1]["indicators"][n - 1]


def _set(area: int, n: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda d: ind(d, area, n).update(fields)


def _del(area: int, n: int, name: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: ind(d, area, n).pop(name)


def _no_required(d: dict[str, Any]) -> None:
    for i in d["areas"][3]["indicators"]:
        i["required"] = False


def _swap_areas(d: dict[str, Any]) -> None:
    d["areas"][0], d["areas"][1] = d["areas"][1], d["areas"][0]


def _gap_to_ratio_keeping_step(d: dict[str, Any]) -> None:
    ind(d, 1, 1)["rule"] = "ratio"


MALFORMED: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("bad direction", _set(1, 1, direction="up"), "areas[1].indicators[1].direction", "must be one of"),
    ("bad rule", _set(3, 2, rule="linear"), "areas[3].indicators[2].rule", "must be one of 'gap', 'ratio'"),
    ("target above range", _set(2, 1, target=120), "areas[2].indicators[1].target", "outside the range 0..100"),
    ("target below range", _set(3, 2, target=-101), "areas[3].indicators[2].target", "outside the range"),
    ("duplicate key", _set(3, 2, key="complete_records"), "areas[3].indicators[2].key", "duplicate key"),
    ("duplicate in one area", _set(1, 2, key="active_members"), "areas[1].indicators[2].key", "areas[1].indicators[1]"),
    ("key is an area key", _set(4, 1, key="roi"), "areas[4].indicators[1].key", "is an area key"),
    ("key is reserved", _set(4, 1, key="overall"), "areas[4].indicators[1].key", "reserved"),
    ("key pattern", _set(4, 1, key="New Leads"), "areas[4].indicators[1].key", "lower-case letters"),
    ("no required indicator", _no_required, "areas[4].indicators", "required = true"),
    ("missing name", _del(5, 1, "name_en"), "areas[5].indicators[1].name_en", "missing or empty text"),
    ("empty name", _set(5, 2, name_ja="  "), "areas[5].indicators[2].name_ja", "missing or empty text"),
    ("padded name", _set(5, 2, name_ja=" 入力時間"), "areas[5].indicators[2].name_ja", "spaces"),
    ("long ja name", _set(1, 1, name_ja="あ" * 25), "areas[1].indicators[1].name_ja", "25 characters; at most 24"),
    ("long en name", _set(1, 1, name_en="a" * 41), "areas[1].indicators[1].name_en", "41 characters; at most 40"),
    ("missing unit", _del(1, 2, "unit"), "areas[1].indicators[2].unit", "missing"),
    ("long unit", _set(1, 2, unit="件" * 11), "areas[1].indicators[2].unit", "at most 10"),
    ("unknown field", _set(2, 2, weight=2), "areas[2].indicators[2].weight", "unknown field"),
    ("missing target", _del(2, 2, "target"), "areas[2].indicators[2].target", "missing number"),
    ("text target", _set(2, 2, target="2"), "areas[2].indicators[2].target", "finite number"),
    ("bool minimum", _set(2, 2, minimum=False), "areas[2].indicators[2].minimum", "finite number"),
    ("infinite maximum", _set(2, 2, maximum=float("inf")), "areas[2].indicators[2].maximum", "finite number"),
    ("nan target", _set(2, 2, target=float("nan")), "areas[2].indicators[2].target", "finite number"),
    ("minimum not below maximum", _set(2, 2, minimum=100), "areas[2].indicators[2].maximum", "above minimum"),
    ("ratio below 0", _set(4, 3, minimum=-1), "areas[4].indicators[3].minimum", "ratio rule"),
    ("gap without step", _del(2, 1, "step"), "areas[2].indicators[1].step", "missing number"),
    ("zero step", _set(2, 1, step=0), "areas[2].indicators[1].step", "must be above 0"),
    ("step on ratio", _gap_to_ratio_keeping_step, "areas[1].indicators[1].step", "only the gap and improve rules"),
    ("improve without step", _del(3, 2, "step"), "areas[3].indicators[2].step", "missing number"),
    ("scale without floor", _del(3, 1, "floor"), "areas[3].indicators[1].floor", "missing number"),
    ("floor above the target", _set(3, 1, floor=4.5), "areas[3].indicators[1].floor", "must be below the target"),
    ("floor at the target", _set(3, 1, floor=4.2), "areas[3].indicators[1].floor", "must be below the target"),
    ("floor outside the range", _set(3, 1, floor=0), "areas[3].indicators[1].floor", "outside the range 1..5"),
    ("floor on a gap rule", _set(3, 2, floor=-100), "areas[3].indicators[2].floor", "only the scale rule"),
    ("step on a scale rule", _set(3, 1, step=1), "areas[3].indicators[1].step", "only the gap and improve"),
    ("missing definition", _del(4, 3, "definition_en"), "areas[4].indicators[3].definition_en", "missing"),
    ("two-line definition", _set(4, 3, definition_ja="分子\n分母"), "areas[4].indicators[3].definition_ja",
     "one line"),
    ("long definition", _set(4, 3, definition_ja="あ" * 81), "areas[4].indicators[3].definition_ja", "at most 80"),
    ("missing English unit", _del(1, 2, "unit_en"), "areas[1].indicators[2].unit_en", "missing"),
    ("retired but required", _set(3, 4, required=True), "areas[3].indicators[4].required", "retired"),
    ("counted not bool", _set(4, 7, counted="no"), "areas[4].indicators[7].counted", "true or false"),
    ("unit twice (ja)", _set(3, 4, name_ja="問い合わせ解決までの平均時間"), "areas[3].indicators[4].name_ja",
     "says '時間'"),
    ("unit part twice", _set(1, 2, name_ja="1人あたり週の更新件数"), "areas[1].indicators[2].name_ja", "says '件'"),
    ("percent twice", _set(2, 1, name_ja="そろった顧客データの割合"), "areas[2].indicators[1].name_ja", "says '割合'"),
    ("unit twice (en)", _set(3, 4, name_en="Hours to resolve an inquiry"), "areas[3].indicators[4].name_en",
     "says 'hours'"),
    ("required not bool", _set(5, 1, required="yes"), "areas[5].indicators[1].required", "true or false"),
    ("missing required", _del(5, 1, "required"), "areas[5].indicators[1].required", "true or false"),
    ("indicator not a table", lambda d: d["areas"][0]["indicators"].append(3), "areas[1].indicators[4]", "table"),
    ("no indicators", lambda d: d["areas"][2].update(indicators=[]), "areas[3].indicators", "at least one"),
    ("indicators missing", lambda d: d["areas"][2].pop("indicators"), "areas[3].indicators", "at least one"),
    ("missing area name", lambda d: d["areas"][1].pop("name_ja"), "areas[2].name_ja", "missing or empty text"),
    ("unknown area field", lambda d: d["areas"][1].update(weight=1), "areas[2].weight", "unknown field"),
    ("areas out of order", _swap_areas, "areas[1].key", "expected 'engagement'"),
    ("renamed area", lambda d: d["areas"][4].update(key="speed"), "areas[5].key", "expected 'efficiency'"),
    ("area not a table", lambda d: d["areas"].__setitem__(1, "data_quality"), "areas[2]", "must be a table"),
    ("four areas", lambda d: d["areas"].pop(), "areas", "exactly 5 areas"),
    ("no areas", lambda d: d.pop("areas"), "areas", "exactly 5 areas"),
    ("unknown top-level field", lambda d: d.update(version=2), "version", "unknown field"),
]


@pytest.mark.parametrize(("change", "field", "problem"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_malformed_catalog_names_file_and_field(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], field: str, problem: str
) -> None:
    data = copy.deepcopy(real_data())
    change(data)
    path = write(tmp_path, data)
    with pytest.raises(ContentError) as info:
        load(path)
    err = info.value
    assert (err.path, err.field) == (str(path), field)
    assert problem in err.problem
    assert str(err).startswith(f"{path}: {field}: ")
    assert isinstance(err, ConfigError)  # stops start-up like any configuration error


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "kpi.toml"
    path.write_text('[[areas]]\nkey = "engagement\n', encoding="utf-8")
    with pytest.raises(ContentError, match=r"not valid TOML") as info:
        load(path)
    assert (info.value.path, info.value.field) == (str(path), "(file)")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "kpi.toml"
    path.write_bytes('name = "データ"'.encode("shift_jis"))
    with pytest.raises(ContentError, match=r"not valid TOML") as info:
        load(path)
    assert info.value.field == "(file)"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ContentError, match=r"file not found") as info:
        load(path)
    assert (info.value.path, info.value.field) == (str(path), "(file)")
