"""A team's quarter as the method sees it: which areas are in, who may report which, who reported.

Pure over the catalog and a stored :class:`~conversations.teams.Report`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conversations.kpi_catalog import Catalog
from conversations.teams import Report


def indicator_keys(catalog: Catalog, areas: Sequence[str]) -> list[str]:
    return [k for a in areas for k in catalog.area(a).indicator_keys]


def areas_in(catalog: Catalog, report: Report | None) -> list[str]:
    """The areas of a quarter that are in (reported), in catalog order."""
    if report is None:
        return []
    return [a.key for a in catalog.areas if report.has(a.key, a.indicator_keys)]


def missing_areas(catalog: Catalog, report: Report | None) -> list[str]:
    have = set(areas_in(catalog, report))
    return [a for a in catalog.area_keys if a not in have]


def editable_areas(catalog: Catalog, owners: Mapping[str, str], user: str) -> list[str]:
    """The areas ``user`` reports: without owners, or for someone who owns none (the team lead, the
    consultant), every area; for an owner, their areas and any area nobody owns."""
    if not any(owners.get(a) == user for a in catalog.area_keys):
        return list(catalog.area_keys)
    return [a for a in catalog.area_keys if owners.get(a) == user or not owners.get(a)]


def reporters(catalog: Catalog, report: Report | None) -> list[str]:
    """Who reported the quarter's areas, in area order, each once."""
    if report is None:
        return []
    people = [report.areas[a][0] for a in catalog.area_keys if a in report.areas]
    return list(dict.fromkeys(people or ([report.by] if report.by else [])))
