"""How ``./scripts/test`` spreads the suite over its pytest-xdist processes (``--dist loadfile``): a test file's
tests run in one process, one file after another; the files that take longest go first, so no process is left
alone with one at the end; the browser tests' files run in one process, one after the other (two Chromiums
and two ``crmbot serve`` at once starve a 2-CPU machine).
"""

from __future__ import annotations

from typing import Any

import pytest

# Test files (or folders) that run together in one process, one after another.
TOGETHER = ("tests/browser/",)

# The files that take longest (about 10 s or more on one CPU; `--durations`), longest first: started first.
SLOW_FIRST = (
    "tests/browser/",
    "tests/resilience/test_fuzz.py",
    "tests/bot/test_embedded_redis.py",
    "tests/bot/console/test_leads_overview.py",
    "tests/bot/console/test_bookings_api.py",
    "tests/bot/console/test_lead_work.py",
    "tests/conversations/test_booking_race.py",
    "tests/bot/line/test_setup.py",
    "tests/test_isolation.py",
    "tests/bot/line/test_result_flow.py",
    "tests/bot/test_web.py",
    "tests/bot/test_flood.py",
    "tests/bot/line/test_delivery.py",
    "tests/bot/reminders/test_year.py",
    "tests/bot/slack/test_report.py",
    "tests/bot/line/test_operator.py",
    "tests/bot/line/test_webhook.py",
    "tests/bot/line/test_consult.py",
    "tests/e2e/",
    "tests/bot/console/test_serve.py",
    "tests/resilience/test_property.py",
    "tests/resilience/test_cluster.py",
    "tests/bot/test_cli.py",
)


def _rank(nodeid: str) -> int:
    return next((i for i, prefix in enumerate(SLOW_FIRST) if nodeid.startswith(prefix)), len(SLOW_FIRST))


def slow_first(items: list[pytest.Item]) -> None:
    """Reorder ``items`` in place: the slow files first (in SLOW_FIRST's order), the rest as collected. Every
    process makes the same order (xdist checks that they collected the same)."""
    items.sort(key=lambda item: _rank(item.nodeid))  # stable: a file's tests keep their order


def make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadFileScheduling

    class Plan(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((prefix for prefix in TOGETHER if nodeid.startswith(prefix)), super()._split_scope(nodeid))

    return Plan(config, log)
