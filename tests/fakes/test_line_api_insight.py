"""The fake LINE API's statistics per aggregation unit: the units used (paged), a unit's figures over a period
(withheld counts null), and every request checked against LINE's insight.yml / messaging-api.yml."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlencode

import pytest

from tests.fakes.line_api import AGGREGATION_LIST, INSIGHT_UNIT, FakeLineApi
from tests.fakes.test_line_api import TOKEN, call


@pytest.fixture
def fake() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as api:
        yield api


def test_the_units_used_come_a_page_at_a_time(fake: FakeLineApi) -> None:
    for unit in ("nudge_q1", "nudge_q2", "fu_q3_1"):
        fake.set_unit_figures(unit, "20261201", 0, 0)
    status, first, _ = call(fake, "GET", f"{AGGREGATION_LIST}?limit=2")
    assert status == 200 and first == {"customAggregationUnits": ["nudge_q1", "nudge_q2"], "next": "2"}
    status, rest, _ = call(fake, "GET", f"{AGGREGATION_LIST}?limit=2&start=2")
    assert rest == {"customAggregationUnits": ["fu_q3_1"]}
    assert fake.contract_errors == []


def test_a_units_figures_sum_the_days_and_a_withheld_day_makes_null(fake: FakeLineApi) -> None:
    fake.set_unit_figures("nudge_q4", "20261201", 25, 3)
    fake.set_unit_figures("nudge_q4", "20261202", 30, None)

    def ask(first: str, last: str, unit: str = "nudge_q4") -> dict[str, object]:
        query = urlencode({"customAggregationUnit": unit, "from": first, "to": last})
        status, body, _ = call(fake, "GET", f"{INSIGHT_UNIT}?{query}")
        assert status == 200
        return dict(body["overview"])

    assert ask("20261201", "20261201")["uniqueImpression"] == 25
    both = ask("20261201", "20261202")
    assert both["uniqueImpression"] == 55 and both["uniqueClick"] is None
    assert ask("20261203", "20261203")["uniqueImpression"] == 0  # a day with nothing
    assert fake.contract_errors == []


def test_a_request_the_spec_refuses_is_a_contract_error(fake: FakeLineApi) -> None:
    call(fake, "GET", f"{INSIGHT_UNIT}?" + urlencode({"customAggregationUnit": "nudge-q4!", "from": "20261201",
                                                       "to": "20261201"}))
    call(fake, "GET", f"{INSIGHT_UNIT}?" + urlencode({"customAggregationUnit": "nudge_q4", "from": "20261201"}))
    errors = list(fake.contract_errors)
    assert len(errors) == 2 and all(e.startswith(f"GET {INSIGHT_UNIT}: spec:") for e in errors), errors
    fake.contract_errors.clear()
    call(fake, "GET", f"{INSIGHT_UNIT}?" + urlencode({"customAggregationUnit": "nudge_q4", "from": "20261201",
                                                       "to": "20270101"}))  # more than 30 days
    assert any("not within 30 days" in e for e in fake.contract_errors)
    fake.contract_errors.clear()
