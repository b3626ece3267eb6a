"""Where leads came from and who they are, in the console: LINE users start with 「診断 NAME」 (a
``crmbot line links`` link) through signed webhooks; the worker applies the figures; the funnel API, the
overview, the leads page and leads.csv filtered by ``?source=`` count exactly; a lead keeps its first
source; the qualification answers are on the lead page and in leads.csv."""

from __future__ import annotations

import base64
import csv
import io
import re

import pytest

from conversations.analytics import Analytics
from tests.bot.console.conftest import TOKEN, LineConsole
from tests.bot.line.helpers import LineUser

AUTH = {"Authorization": f"Bearer {TOKEN}"}
DAY = 86400.0


def take(lc: LineConsole, start: str, answers: str, user: LineUser | None = None) -> LineUser:
    user = user or lc.user()
    user.say(start)
    lc.settle()
    for letter in answers:
        lc.clock.advance(5)
        user.say(letter)
        lc.settle()
    return user


def funnel(lc: LineConsole, query: str = "") -> dict:
    res = lc.http.get("/console/api/funnel" + query, headers=AUTH)
    assert res.status_code == 200, res.get_data(as_text=True)
    return dict(res.get_json())


def csv_rows(lc: LineConsole, query: str = "") -> list[dict[str, str]]:
    res = lc.http.get("/console/export/leads.csv" + query, headers=AUTH)
    assert res.status_code == 200
    return list(csv.DictReader(io.StringIO(res.data.decode("utf-8-sig"))))


@pytest.fixture
def sourced(line_console: LineConsole) -> dict[str, LineUser]:
    """ads: one finished, then retaken with 「診断 sns」 (keeps ads) and left at Q3; sns: one stopped at Q2;
    none: one finished by plain 診断, one by 「診断 広告」 (not a source name: no source, started anyway)."""
    lc = line_console
    users = {"ads": take(lc, "診断 ads", "AAAAAAABBC")}
    users["sns"] = take(lc, "診断 sns", "A")
    users["plain"] = take(lc, "診断", "AAAAAAAAAA")
    users["bad"] = take(lc, "診断 広告", "BBBBBBBBBB")
    lc.clock.advance(DAY)
    take(lc, "診断 sns", "AB", users["ads"])  # a retake: a new lead, the person's first source kept
    return users


def test_a_lead_keeps_the_first_source(line_console: LineConsole, sourced: dict[str, LineUser]) -> None:
    a = Analytics(line_console.r, clock=line_console.clock)
    assert [x.source for x in a.person("line", sourced["ads"].user_id)] == ["ads", "ads"]
    assert [x.source for x in a.person("line", sourced["sns"].user_id)] == ["sns"]
    assert [x.source for x in a.person("line", sourced["bad"].user_id)] == [""]
    assert a.person("line", sourced["bad"].user_id)[0].is_finished  # the diagnosis started anyway


def test_the_funnel_api_filters_by_source_exactly(line_console: LineConsole, sourced: dict[str, LineUser]) -> None:
    lc = line_console
    whole = funnel(lc)
    assert (whole["started"], whole["finished"], whole["in_progress"]) == (5, 3, 2)
    ads = funnel(lc, "?source=ads")
    assert (ads["started"], ads["finished"], ads["in_progress"], ads["tiers"]) == (2, 1, 1, {"A": 0, "B": 1, "C": 0})
    assert [q["shown"] for q in ads["questions"]] == [2, 2, 2, 1, 1, 1, 1, 1, 1, 1]
    assert ads["questions"][7]["answers"] == {"A": 0, "B": 1, "C": 0, "D": 0}
    sns = funnel(lc, "?source=sns")
    assert (sns["started"], sns["finished"], sns["in_progress"]) == (1, 0, 1)
    assert [q["shown"] for q in sns["questions"]][:3] == [1, 1, 0]
    assert funnel(lc, "?source=none")["started"] == 0
    assert funnel(lc, "?source=ads&channel=slack")["started"] == 0
    assert funnel(lc, "?source=ads&from=2026-01-02")["started"] == 1  # the retake, the next day
    for bad in ("?source=広告", "?source=a%20b", "?source=" + "a" * 21):
        res = lc.http.get("/console/api/funnel" + bad, headers=AUTH)
        assert res.status_code == 400 and "source" in res.get_json()["error"], bad


def test_leads_page_and_csv_filter_by_source(line_console: LineConsole, sourced: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/leads?source=ads").get_data(as_text=True)
    assert len(re.findall(r'<tr class="lead-row"', html)) == 2
    assert 'id="filter-source" value="ads"' in html
    assert "source=ads" in re.search(r'id="export-leads" href="([^"]+)"', html).group(1)
    assert len(re.findall(r'<tr class="lead-row"', lc.http.get("/console/leads?source=sns").get_data(
        as_text=True))) == 1
    assert 'id="filter-error"' in lc.http.get("/console/leads?source=%21").get_data(as_text=True)
    for query, count in (("&sort=tier", 2), ("&sort=status", 2), ("&progress=finished", 1), ("&tier=B", 1),
                         ("&progress=in_progress", 1), ("&q=zzzz", 0)):
        page = lc.http.get("/console/leads?source=ads" + query).get_data(as_text=True)
        assert len(re.findall(r'<tr class="lead-row"', page)) == count, query
    rows = csv_rows(lc, "?source=ads")
    assert [(r["流入元"], r["診断回"]) for r in rows] == [("ads", "2"), ("ads", "1")]
    assert [r["流入元"] for r in csv_rows(lc, "?source=ads&progress=finished")] == ["ads"]
    assert sorted(r["流入元"] for r in csv_rows(lc)) == ["", "", "ads", "ads", "sns"]


def test_overview_filters_by_source(line_console: LineConsole, sourced: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/?source=ads").get_data(as_text=True)
    assert re.search(r'id="fig-started">2<', html) and re.search(r'id="fig-finished">1<', html)
    drawn = re.search(r'id="chart-funnel" src="data:image/svg\+xml;base64,([^"]+)"', html).group(1)
    day = re.search(r'id="filter-to" value="([^"]+)"', html).group(1)
    start = re.search(r'id="filter-from" value="([^"]+)"', html).group(1)
    alone = lc.http.get(f"/console/charts/funnel.svg?source=ads&from={start}&to={day}")  # the source's chart
    everyone = lc.http.get(f"/console/charts/funnel.svg?from={start}&to={day}")
    assert base64.b64decode(drawn) == alone.data != everyone.data


def test_the_lead_page_and_csv_show_the_qualification_answers(line_console: LineConsole) -> None:
    lc = line_console
    lc.login()
    user = take(lc, "診断 ads", "AAAAAAABBC")
    for data in ("f:0:3", "f:1:0"):  # 美容・健康, then 月商 skipped; カート left unanswered
        user.tap(data)
        lc.settle()
    [lead] = Analytics(lc.r, clock=lc.clock).person("line", user.user_id)
    assert lead.qual == "30"
    html = lc.http.get(f"/console/leads/{lc.ref(lead.id)}").get_data(as_text=True)  # its opaque id
    assert re.search(r'id="lead-source">ads<', html)
    section = html[html.index('id="lead-qualify"'):html.index('id="lead-consult"')]
    pairs = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", section)
    assert pairs == [("商材", "美容・健康"), ("月商", "（答えない）"), ("カート", "–")]
    [row] = csv_rows(lc)
    assert (row["商材"], row["月商"], row["カート"], row["流入元"]) == ("美容・健康", "（答えない）", "", "ads")


def test_the_funnels_consultations_filter_by_source(line_console: LineConsole, sourced: dict[str, LineUser]) -> None:
    from conversations.booking import Bookings
    from conversations.keys import Subject
    from conversations.transports import Transport

    lc = line_console
    store = Bookings(lc.r, clock=lc.clock)
    for name in ("ads", "sns", "plain"):
        store.request_consultation(Subject(Transport.LINE, sourced[name].user_id))
    store.request_consultation(Subject(Transport.LINE, sourced["ads"].user_id))  # asked again: one lead
    assert funnel(lc)["consultations"]["requested"] == 3
    assert funnel(lc, "?source=ads")["consultations"] == {"requested": 1, "booked": 0, "attended": 0,
                                                          "no_show": 0, "cancelled": 0}
    assert funnel(lc, "?source=sns")["consultations"]["requested"] == 1
    assert funnel(lc, "?source=none")["consultations"]["requested"] == 0
    assert funnel(lc, "?source=ads&channel=slack")["consultations"]["requested"] == 0
    lc.login()
    page = lc.http.get("/console/?source=ads").get_data(as_text=True)
    assert re.search(r'id="fig-consult-requested">1<', page)
