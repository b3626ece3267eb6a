"""A quarter and a figure as people read them, shared by every channel that shows KPIs (Slack's screens,
the console): a quarter by its months (「2026年7〜9月」), by the team's business year (「2026年度 第2四半期
（7〜9月）」, which may start in any month), or short (「2026年度 第2四半期」); a figure with its unit.
The arithmetic of periods is in :mod:`scoring.periods`; these are only words, Japanese or English.
"""

from __future__ import annotations

from scoring.periods import Quarter, fiscal

MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def months_label(locale: str, quarter: Quarter) -> str:
    """The quarter named by its months: 「2026年7〜9月」 / "Jul-Sep 2026"; across a new year
    「2026年12月〜2027年2月」 / "Dec 2026-Feb 2027"."""
    first, last = quarter.first_month, quarter.last_month
    if locale == "en":
        if quarter.last_year != quarter.year:
            return f"{MONTHS_EN[first - 1]} {quarter.year}-{MONTHS_EN[last - 1]} {quarter.last_year}"
        return f"{MONTHS_EN[first - 1]}-{MONTHS_EN[last - 1]} {quarter.year}"
    if quarter.last_year != quarter.year:
        return f"{quarter.year}年{first}月〜{quarter.last_year}年{last}月"
    return f"{quarter.year}年{first}〜{last}月"


def fiscal_label(locale: str, quarter: Quarter, fy_start: int) -> str:
    """The quarter in the team's business year, without its months (where room is short: a chart's
    axis, a table's column): 「2026年度 第2四半期」 / "FY2026 Q2"."""
    fq = fiscal(quarter, fy_start)
    if fq is None:  # not one of this business year's quarters (stored before its start moved): its months
        return months_label(locale, quarter)
    return f"FY{fq.year} Q{fq.q}" if locale == "en" else f"{fq.year}年度 第{fq.q}四半期"


def period_label(locale: str, quarter: Quarter, fy_start: int) -> str:
    """The quarter in the team's business year, with its months: 「2026年度 第2四半期（7〜9月）」,
    「2026年度 第4四半期（2027年1〜3月）」 (the months' year said when it is not the business year's),
    「2026年度 第4四半期（2026年12月〜2027年2月）」 for a year from March, "FY2026 Q2 (Jul-Sep 2026)".
    A quarter that is not one of that business year's (stored before the team moved its year's start)
    is named by its months alone."""
    fq = fiscal(quarter, fy_start)
    if fq is None:
        return months_label(locale, quarter)
    if locale == "en":
        return f"{fiscal_label(locale, quarter, fy_start)} ({months_label(locale, quarter)})"
    if quarter.last_year != quarter.year:
        months = months_label(locale, quarter)
    else:
        months = f"{quarter.first_month}〜{quarter.last_month}月"
        if quarter.year != fq.year:
            months = f"{quarter.year}年{months}"
    return f"{fiscal_label(locale, quarter, fy_start)}（{months}）"


def with_unit(locale: str, value: str, unit: str) -> str:
    """A figure with its unit: 「95%」「3.5点」 / "95%", "3.5 of 5"."""
    if locale == "en" and unit not in ("%", "pt"):
        return f"{value} {unit}"
    return f"{value}{unit}"

