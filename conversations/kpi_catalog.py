"""The quarterly KPI catalog as data: areas, indicators, display names and default targets.

The catalog lives in ``conversations/scripts/kpi.toml``. Operators edit names, units, one-line
definitions, ranges, default targets, rules and which indicators are required there (names, units
and definitions in each locale); :func:`load_catalog` checks the
whole file and raises :class:`ContentError` naming the file and the dotted field for anything
malformed (``areas[2].indicators[1].target``; list positions count from 1, as in the diagnosis
scripts), so a bad edit stops start-up instead of skewing a score.

The five areas are fixed by the domain (``AREA_KEYS``, in that order); each has at least one
indicator and at least one required indicator. A name never repeats its unit (the form shows
"name（unit）"). Scoring itself is :mod:`scoring.kpi`.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from conversations.content import LOCALES, SCRIPTS_DIR
from conversations.errors import ContentError
from scoring.kpi import DIRECTIONS, OVERALL, RULES, Indicator, KpiResult, score_report

__all__ = [
    "AREA_KEYS",
    "CATALOG_PATH",
    "DEFINITION_MAX",
    "NAME_MAX",
    "UNIT_MAX",
    "Area",
    "Catalog",
    "load_catalog",
]

CATALOG_PATH = SCRIPTS_DIR / "kpi.toml"
AREA_KEYS: tuple[str, ...] = ("engagement", "data_quality", "satisfaction", "roi", "efficiency")
NAME_MAX: Mapping[str, int] = MappingProxyType({"ja": 24, "en": 40})
DEFINITION_MAX: Mapping[str, int] = MappingProxyType({"ja": 80, "en": 150})
UNIT_MAX = 10
KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
# Words that already say "percent": a name with one of them and the unit % says it twice.
_PERCENT_WORDS = ("%", "％", "割合", "パーセント", "percent", "share of")
_STEP_RULES = ("gap", "improve", "yoy")

_AREA_FIELDS = frozenset({"key", "name_ja", "name_en", "indicators"})
_INDICATOR_FIELDS = frozenset(
    {"key", "name_ja", "name_en", "unit", "unit_en", "definition_ja", "definition_en", "direction", "minimum",
     "maximum", "target", "rule", "step", "floor", "required", "counted", "retired"}
)
# the locale -> the field of an indicator's unit in that locale
_UNIT_FIELDS: Mapping[str, str] = MappingProxyType({"ja": "unit", "en": "unit_en"})


@dataclass(frozen=True)
class Area:
    """One evaluation area: its key, display names and the keys of the indicators it asks for, in catalog
    order (a retired indicator is not asked for: it is only in :attr:`Catalog.indicators`)."""

    key: str
    name_ja: str
    name_en: str
    indicator_keys: tuple[str, ...]


@dataclass(frozen=True)
class Catalog:
    """The checked KPI catalog. Build it with :func:`load_catalog`.

    ``names`` maps every area key and indicator key to its display names by locale; ``units``
    and ``definitions`` map every indicator key to its unit and one-line definition by locale
    (read-only; excluded from hashing, as they are derived from the file like the rest).
    """

    path: str
    areas: tuple[Area, ...]
    indicators: tuple[Indicator, ...]
    names: Mapping[str, Mapping[str, str]] = field(hash=False, repr=False)
    units: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}), hash=False,
                                                   repr=False)
    definitions: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}), hash=False,
                                                         repr=False)

    @property
    def area_keys(self) -> tuple[str, ...]:
        return tuple(a.key for a in self.areas)

    def area(self, key: str) -> Area:
        """The area with this key; ``KeyError`` if there is none."""
        for a in self.areas:
            if a.key == key:
                return a
        raise KeyError(key)

    def indicator(self, key: str) -> Indicator:
        """The indicator with this key; ``KeyError`` if there is none."""
        for ind in self.indicators:
            if ind.key == key:
                return ind
        raise KeyError(key)

    def name(self, key: str, locale: str = "ja") -> str:
        """Display name of an area or indicator; ``KeyError`` for an unknown key or locale."""
        return self.names[key][locale]

    def unit(self, key: str, locale: str = "ja") -> str:
        """An indicator's unit in a locale (its ``unit`` when the catalog was built without them)."""
        units = self.units.get(key)
        return units[locale] if units is not None else self.indicator(key).unit

    def definition(self, key: str, locale: str = "ja") -> str:
        """An indicator's one-line definition in a locale ("" when the catalog was built without them)."""
        definitions = self.definitions.get(key)
        return definitions[locale] if definitions is not None else ""

    def score(
        self,
        values: Mapping[str, float | None],
        targets: Mapping[str, float] | None = None,
        previous: Mapping[str, float | None] | None = None,
        year_ago: Mapping[str, float | None] | None = None,
    ) -> KpiResult:
        """Score a report against this catalog (see :func:`scoring.kpi.score_report`); ``previous``:
        the previous quarter's figures, for the improve rule; ``year_ago``: the same quarter's a year
        earlier, for the yoy rule."""
        return score_report(self.indicators, self.area_keys, values, targets, previous, year_ago)

    @property
    def uses_year_ago(self) -> bool:
        """Whether an indicator is scored against the same quarter last year (the yoy rule)."""
        return any(ind.rule == "yoy" for ind in self.indicators)


@cache
def load_catalog(path: str | None = None) -> Catalog:
    """Load and check the KPI catalog (default: ``conversations/scripts/kpi.toml``).

    Cached: each file is read once per process.
    """
    where = str(path or CATALOG_PATH)
    try:
        data = tomllib.loads(Path(where).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ContentError(where, "(file)", "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ContentError(where, "(file)", f"not valid TOML: {e}") from None
    return _parse(where, data)


@dataclass(frozen=True)
class _Reader:
    """Reads the catalog file's tables; every problem is a :class:`ContentError` naming the file and field."""

    where: str

    def fail(self, at: str, problem: str) -> ContentError:
        return ContentError(self.where, at, problem)

    def only(self, obj: Mapping[str, Any], allowed: frozenset[str], at: str) -> None:
        for extra in sorted(set(obj) - allowed):
            raise self.fail(f"{at}.{extra}" if at else extra, "unknown field")

    def text_at(self, obj: Mapping[str, Any], key: str, at: str, max_len: int) -> str:
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(at, "missing or empty text")
        if value != value.strip():
            raise self.fail(at, "must not start or end with spaces")
        if len(value) > max_len:
            raise self.fail(at, f"{len(value)} characters; at most {max_len} allowed")
        if "\n" in value or "\r" in value:
            raise self.fail(at, "must be one line")
        return value

    def key_at(self, obj: Mapping[str, Any], at: str) -> str:
        value = self.text_at(obj, "key", at, 40)
        if not KEY_PATTERN.fullmatch(value):
            raise self.fail(at, f"{value!r} must be lower-case letters, digits and _ (starting with a letter)")
        return value

    def number_at(self, obj: Mapping[str, Any], key: str, at: str) -> float:
        value = obj.get(key)
        if value is None:
            raise self.fail(at, "missing number")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(at, f"must be a finite number, got {value!r}")
        return value

    def choice_at(self, obj: Mapping[str, Any], key: str, at: str, choices: tuple[str, ...]) -> str:
        value = obj.get(key)
        if value not in choices:
            raise self.fail(at, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return str(value)


@dataclass
class _Parsed:
    """What the catalog file has given so far (areas are read in order, each with its indicators)."""

    areas: list[Area] = field(default_factory=list)
    indicators: list[Indicator] = field(default_factory=list)
    names: dict[str, Mapping[str, str]] = field(default_factory=dict)
    units: dict[str, Mapping[str, str]] = field(default_factory=dict)
    definitions: dict[str, Mapping[str, str]] = field(default_factory=dict)
    seen: dict[str, str] = field(default_factory=dict)  # indicator key -> field where it was first defined


def _parse(where: str, data: dict[str, Any]) -> Catalog:
    r = _Reader(where)
    r.only(data, frozenset({"areas"}), "")
    raw_areas = data.get("areas")
    if not isinstance(raw_areas, list) or len(raw_areas) != len(AREA_KEYS):
        raise r.fail("areas", f"must list exactly {len(AREA_KEYS)} areas: {', '.join(AREA_KEYS)}")
    out = _Parsed()
    for a_no, (ra, expected) in enumerate(zip(raw_areas, AREA_KEYS, strict=True), start=1):
        _parse_area(r, f"areas[{a_no}]", ra, expected, out)
    return Catalog(path=where, areas=tuple(out.areas), indicators=tuple(out.indicators),
                   names=MappingProxyType(out.names), units=MappingProxyType(out.units),
                   definitions=MappingProxyType(out.definitions))


def _parse_area(r: _Reader, af: str, ra: Any, expected: str, out: _Parsed) -> None:
    """One ``[[areas]]`` entry (it must be the area expected at its place) and its indicators."""
    if not isinstance(ra, dict):
        raise r.fail(af, "must be a table")
    r.only(ra, _AREA_FIELDS, af)
    area_key = r.key_at(ra, f"{af}.key")
    if area_key != expected:
        raise r.fail(f"{af}.key", f"expected {expected!r}: the areas are {', '.join(AREA_KEYS)}, in that order")
    out.names[area_key] = MappingProxyType(
        {loc: r.text_at(ra, f"name_{loc}", f"{af}.name_{loc}", NAME_MAX[loc]) for loc in LOCALES}
    )
    raw_inds = ra.get("indicators")
    if not isinstance(raw_inds, list) or not raw_inds:
        raise r.fail(f"{af}.indicators", "must list at least one indicator")
    keys = [_parse_indicator(r, f"{af}.indicators[{i_no}]", ri, area_key, out)
            for i_no, ri in enumerate(raw_inds, start=1)]
    keys = [k for k in keys if not any(ind.key == k and ind.retired for ind in out.indicators)]
    if not any(ind.required for ind in out.indicators if ind.area == area_key):
        raise r.fail(f"{af}.indicators", "at least one indicator must have required = true")
    area_names = out.names[area_key]
    out.areas.append(Area(area_key, area_names["ja"], area_names["en"], indicator_keys=tuple(keys)))


def _parse_indicator(r: _Reader, f: str, ri: Any, area_key: str, out: _Parsed) -> str:
    """One indicator of an area: its key (unique), names, units, definitions, range, target and rule."""
    if not isinstance(ri, dict):
        raise r.fail(f, "must be a table")
    r.only(ri, _INDICATOR_FIELDS, f)
    key = r.key_at(ri, f"{f}.key")
    if key in out.seen:
        raise r.fail(f"{f}.key", f"duplicate key {key!r}; already used at {out.seen[key]}")
    if key in AREA_KEYS or key == OVERALL:
        raise r.fail(f"{f}.key", f"{key!r} is an area key (or reserved) and cannot name an indicator")
    out.seen[key] = f"{f}.key"
    ind_names = {loc: r.text_at(ri, f"name_{loc}", f"{f}.name_{loc}", NAME_MAX[loc]) for loc in LOCALES}
    ind_units = {loc: r.text_at(ri, _UNIT_FIELDS[loc], f"{f}.{_UNIT_FIELDS[loc]}", UNIT_MAX) for loc in LOCALES}
    for loc in LOCALES:
        said = _unit_in_name(ind_names[loc], ind_units[loc])
        if said:
            raise r.fail(f"{f}.name_{loc}", f"says {said!r}, which its unit {ind_units[loc]!r} says already "
                                            "(the form shows the unit beside the name)")
    ind_definitions = {
        loc: r.text_at(ri, f"definition_{loc}", f"{f}.definition_{loc}", DEFINITION_MAX[loc]) for loc in LOCALES
    }
    direction = r.choice_at(ri, "direction", f"{f}.direction", DIRECTIONS)
    rule = r.choice_at(ri, "rule", f"{f}.rule", RULES)
    minimum = r.number_at(ri, "minimum", f"{f}.minimum")
    maximum = r.number_at(ri, "maximum", f"{f}.maximum")
    if minimum >= maximum:
        raise r.fail(f"{f}.maximum", f"must be above minimum ({minimum}), got {maximum}")
    if rule == "ratio" and minimum < 0:
        raise r.fail(f"{f}.minimum", f"the ratio rule needs a minimum of 0 or more, got {minimum}")
    target = r.number_at(ri, "target", f"{f}.target")
    if not minimum <= target <= maximum:
        raise r.fail(f"{f}.target", f"{target} is outside the range {minimum}..{maximum}")
    step, floor = _step_and_floor(r, f, ri, rule, direction, (minimum, maximum, target))
    required = ri.get("required")
    if not isinstance(required, bool):
        raise r.fail(f"{f}.required", f"must be true or false, got {required!r}")
    counted, retired = ri.get("counted", True), ri.get("retired", False)
    for name, flag in (("counted", counted), ("retired", retired)):
        if not isinstance(flag, bool):
            raise r.fail(f"{f}.{name}", f"must be true or false, got {flag!r}")
    if retired and required:
        raise r.fail(f"{f}.required", "a retired indicator is no longer asked for: it cannot be required")
    out.indicators.append(
        Indicator(
            key=key,
            area=area_key,
            direction=direction,  # type: ignore[arg-type]  # checked against DIRECTIONS
            unit=ind_units["ja"],
            minimum=minimum,
            maximum=maximum,
            target=target,
            rule=rule,  # type: ignore[arg-type]  # checked against RULES
            step=step,
            required=required,
            floor=floor,
            counted=counted,
            retired=retired,
        )
    )
    out.names[key] = MappingProxyType(ind_names)
    out.units[key] = MappingProxyType(ind_units)
    out.definitions[key] = MappingProxyType(ind_definitions)
    return key


def _step_and_floor(r: _Reader, f: str, ri: Mapping[str, Any], rule: str, direction: str,
                    bounds: tuple[float, float, float]) -> tuple[float, float | None]:
    """The rule's own fields: a step (gap, improve) and a floor (scale); ``bounds``: minimum, maximum, target."""
    minimum, maximum, target = bounds
    if rule in _STEP_RULES:
        step = r.number_at(ri, "step", f"{f}.step")
        if step <= 0:
            raise r.fail(f"{f}.step", f"must be above 0, got {step}")
    elif "step" in ri:
        raise r.fail(f"{f}.step", "only the gap and improve rules use a step; remove it")
    else:
        step = Indicator.step
    floor: float | None = None
    if rule == "scale":
        floor = r.number_at(ri, "floor", f"{f}.floor")
        if not minimum <= floor <= maximum:
            raise r.fail(f"{f}.floor", f"{floor} is outside the range {minimum}..{maximum}")
        if (floor >= target) if direction == "higher" else (floor <= target):
            side = "below" if direction == "higher" else "above"
            raise r.fail(f"{f}.floor", f"must be {side} the target ({target}): the floor scores 0, the target 10")
    elif "floor" in ri:
        raise r.fail(f"{f}.floor", "only the scale rule uses a floor; remove it")
    return step, floor


def _unit_in_name(name: str, unit: str) -> str:
    """The part of ``name`` that says its unit again ("" if none): the unit itself, one of its
    parts ("件/週" -> 件, 週), or for % a word meaning percent."""
    lowered = name.casefold()
    words = [unit, *unit.split("/")] + (list(_PERCENT_WORDS) if unit in ("%", "％") else [])
    for word in words:
        word = word.strip()
        if word and word.casefold() in lowered:
            return word
    return ""
