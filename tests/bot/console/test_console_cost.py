"""What the console costs Redis: one overview view (with its charts) and the funnel API cost the same number
of commands at 10 and 10,000 leads (counted with MONITOR on the suite's real
Redis: the commands clients send, a script's own calls left out). ``./scripts/bench --only console`` prints
the same counts (benchmarks/consolecost.py, whose counting and seeding this test uses)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from benchmarks.consolecost import LIMIT, counting, seed
from conversations import analytics
from conversations.analytics import japan_date
from tests.bot.console.conftest import TOKEN, Console

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def views(console: Console) -> dict[str, Callable[[], Any]]:
    day = japan_date(console.clock())
    span = f"from={(day - timedelta(days=29)).isoformat()}&to={day.isoformat()}"
    http = console.http

    def get(path: str, **kw: Any) -> Callable[[], Any]:
        def go() -> Any:
            res = http.get(path, **kw)
            assert res.status_code == 200, (path, res.status_code)
            return res
        return go

    return {
        "overview": get(f"/console/?{span}"),  # its charts drawn in the page (data: images)
        "funnel_api": get(f"/console/api/funnel?{span}&version=v1", headers=AUTH),
    }


def costs(console: Console) -> dict[str, int]:
    out = {}
    for name, view in views(console).items():
        view()  # once before: what a first view sets up once (a session's keys) is not counted
        with counting(console.r) as seen:
            view()
        out[name] = len(seen)
    return out


def test_the_overview_costs_the_same_at_10_and_10000_leads(logged_in: Console) -> None:
    now = logged_in.clock()
    seed(logged_in.r, 10, now)
    few = costs(logged_in)
    assert few["overview"] <= LIMIT, few
    f = analytics.Analytics(logged_in.r, clock=logged_in.clock).funnel()
    assert (f["started"], f["finished"]) == (10, 6)
    seed(logged_in.r, 10_000, now)  # the first 10 again (counted once), then 9,990 more
    f = analytics.Analytics(logged_in.r, clock=logged_in.clock).funnel()
    assert (f["started"], f["finished"], f["in_progress"]) == (10_000, 6666, 1002)  # i % 3 == 0 and i % 30 in (0, 3, 6)
    assert costs(logged_in) == few


def lead_rows(html: str) -> list[str]:
    return re.findall(r'<tr class="lead-row"[^>]*>.*?</tr>', html, flags=re.S)


def test_a_leads_page_deep_in_the_list_costs_what_the_second_costs(logged_in: Console) -> None:
    seed(logged_in.r, 10_000, logged_in.clock())
    http = logged_in.http
    html = http.get("/console/leads").get_data(as_text=True)
    nxt = re.search(r'<a href="([^"]+)" id="page-next"', html).group(1).replace("&amp;", "&")
    assert "after=" in nxt and "page=2" in nxt
    with counting(logged_in.r) as seen:
        second = http.get(nxt).get_data(as_text=True)
    cost = len(seen)
    assert lead_rows(second) == lead_rows(http.get("/console/leads?page=2").get_data(as_text=True))
    for _ in range(3):  # on by the next links: each page from the cursor of the one before
        nxt = re.search(r'<a href="([^"]+)" id="page-next"', second).group(1).replace("&amp;", "&")
        with counting(logged_in.r) as seen:
            second = http.get(nxt).get_data(as_text=True)
        assert len(seen) == cost, "a later page cost more"
    assert "page=5" in nxt
    assert lead_rows(second) == lead_rows(http.get("/console/leads?page=5").get_data(as_text=True))
    deep = analytics.Analytics(logged_in.r, clock=logged_in.clock).leads(limit=150 * 50)[-1]  # page 150's last
    same = sum(1 for x in analytics.Analytics(logged_in.r).leads(limit=150 * 50) if x.started == deep.started)
    with counting(logged_in.r) as seen:
        page151 = http.get(f"/console/leads?page=151&after={deep.started!r}:{same}").get_data(as_text=True)
    assert len(seen) == cost
    assert lead_rows(page151) == lead_rows(http.get("/console/leads?page=151").get_data(as_text=True))
