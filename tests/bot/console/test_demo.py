"""``crmbot demo``: a sample loaded into the running data by stepping the real machine (figures that
agree with each other), every record marked, sending nothing; and removed, from the command or the
overview's button, leaving every figure exactly as it was (the funnel API's JSON, the leads list, the bookings,
the teams compared) with real data beside it: diagnoses, a consultation booked with no diagnosis, a team."""

from __future__ import annotations

import io
import re
from typing import Any

from bot import demo
from bot.cli import demo_cmd
from conversations import analytics
from conversations.analytics import Analytics
from conversations.keys import TeamRef
from conversations.lead_query import LeadQuery, Query
from conversations.lead_work import LeadWork
from conversations.teams import TeamStore
from scoring.periods import Quarter
from tests.bot.console.conftest import TOKEN, LineConsole
from tests.bot.console.test_lead_work import book_in_line
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_booking import AVAILABILITY

QUERIES = ("", "?channel=line", "?from=2025-10-01&to=2025-12-31", "?from=2026-01-01")


def take(lc: LineConsole, answers: str) -> LineUser:
    user = lc.user()
    user.say("診断")
    lc.settle()
    for letter in answers:
        lc.clock.advance(5)
        user.say(letter)
        lc.settle()
    return user


def figures(lc: LineConsole) -> dict[str, Any]:
    """Every figure the console serves: the funnel API over several ranges, followers, consultations, teams."""
    auth = {"Authorization": f"Bearer {TOKEN}"}
    a = Analytics(lc.r, clock=lc.clock, expiry=lc.svc.config.conversation_ttl)
    return {
        "funnel": {q: lc.http.get("/console/api/funnel" + q, headers=auth).get_json() for q in QUERIES},
        "followers": a.followers(),
        "open": a.open_consultations(),
        "leads": sorted(x.id for x in a.leads(limit=1000)),
        "stats_keys": sorted(k.decode() for k in lc.r.scan_iter(match="crmbot:{stats*")),
        "teams": sorted(m.decode() for m in lc.r.smembers("crmbot:{teams}:all")),
        "kpi_csv": lc.http.get("/console/export/kpi.csv", headers=auth).data,
        "bookings": lc.http.get("/console/api/bookings?from=2025-12-01&to=2026-02-28", headers=auth).get_json(),
        "leads_list": [(x.id, x.consult) for x in LeadQuery(a, str).page(Query(), offset=0, limit=1000).leads],
    }


def consistent(f: dict[str, Any]) -> None:
    assert f["started"] == f["finished"] + f["in_progress"] + f["stopped"]
    for q in f["questions"]:
        assert q["shown"] == q["answered"] + q["in_progress"] + q["stopped"], q
    assert sum(f["tiers"].values()) == f["finished"]


def test_demo_then_remove_leaves_every_figure_as_it_was(line_console: LineConsole) -> None:
    lc = line_console
    take(lc, "AAAAAAAABC")  # real data before the sample: one finished, one in progress
    take(lc, "AB")
    # ... a consultation booked in LINE with no diagnosis (a lead numbered 0), and a Slack team's quarter
    assert lc.svc.bookings is not None
    lc.svc.bookings.set_availability(AVAILABILITY)
    asker = lc.user()
    asker.follow()
    lc.settle()
    book_in_line(lc, asker)
    team = TeamRef("T0REAL", "C0REAL")
    TeamStore(lc.r).register(team, "実データチーム", "Asia/Tokyo", "U0REAL", lc.clock() - 100 * 86400)
    TeamStore(lc.r).submit(team, Quarter(2025, 4), {"active_members": 80, "nps": 15}, "U0REAL", lc.clock())
    before = figures(lc)
    assert len(before["bookings"]) == 1 and before["funnel"][""]["consultations"]["booked"] == 1
    assert [n for n, _ in before["leads_list"] if n.startswith(f"line:{asker.user_id}:0-")]
    assert before["teams"] and before["kpi_csv"].count(b"\r\n") == 2
    sent = len(lc.fake.recorded())
    out = io.StringIO()
    assert demo_cmd(lc.svc.config, False, out, clock=lc.clock) == 0
    assert "crmbot demo --remove" in out.getvalue()
    loaded = figures(lc)
    whole = loaded["funnel"][""]
    consistent(whole)
    assert whole["started"] >= before["funnel"][""]["started"] + 30
    assert all(whole["tiers"][t] > 0 for t in "ABC") and whole["stopped"] > 0 and whole["in_progress"] >= 3
    assert loaded["open"] > before["open"] and loaded["followers"] > before["followers"]
    assert len(loaded["teams"]) == len(before["teams"]) + 2
    assert lc.settle() == 0 and len(lc.fake.recorded()) == sent  # nothing queued, nothing sent
    retakes = [x for x in Analytics(lc.r).leads(limit=1000) if x.user_id.startswith("Udemo")]
    assert len({x.user_id for x in retakes}) < len(retakes)  # some took it again
    assert all(lc.r.hget(analytics.lead_key(x.id), "demo") == b"1" for x in retakes)  # marked
    # an operator works a demo lead: a note, a status (its history); all of it goes with the sample
    worked = retakes[0].id
    LeadWork(lc.r, clock=lc.clock).add_note(worked, "試しのメモ", by="console", form_id="demo-note")
    Analytics(lc.r).set_consult_status(worked, "closed", by="console", now=lc.clock())

    assert demo_cmd(lc.svc.config, True, io.StringIO(), clock=lc.clock) == 0
    assert not [k for k in lc.r.scan_iter(match="crmbot:{stats*:lead:*") if worked.encode() in k]
    assert lc.r.zscore(analytics.consult_worked_key(analytics.shard_of_lead(worked)), worked) is None
    assert figures(lc) == before
    assert not demo.is_loaded(lc.r)
    assert not [k for k in lc.r.scan_iter() if b"demo" in k.lower()]


def test_the_overview_loads_and_removes_the_sample_in_one_click(line_console: LineConsole) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/").get_data(as_text=True)
    assert 'id="overview-empty"' in html and 'id="demo-on"' not in html
    before = figures(lc)
    token = lc.csrf("/console/")
    assert lc.http.post("/console/demo", data={}).status_code == 400  # no CSRF token: nothing loaded
    assert not demo.is_loaded(lc.r)
    res = lc.http.post("/console/demo", data={"csrf_token": token}, follow_redirects=True)
    html = res.get_data(as_text=True)
    assert 'id="demo-on"' in html and 'id="overview-empty"' not in html
    started = int(re.search(r'id="fig-started">(\d+)<', html).group(1))  # type: ignore[union-attr]
    assert started >= 30
    teams = lc.http.get("/console/teams").get_data(as_text=True)
    assert "本店CRMチーム" in teams and "EC事業部" in teams
    team = lc.http.get("/console/teams/TDEMO:C0DEMO1").get_data(as_text=True)
    assert 'id="team-channel">#crm-honten<' in team and "佐藤 花子" in team and "U0DEMO" not in team
    res = lc.http.post("/console/demo/remove", data={"csrf_token": token}, follow_redirects=True)
    html = res.get_data(as_text=True)
    assert "サンプルデータを消しました" in html and 'id="overview-empty"' in html and 'id="demo-on"' not in html
    assert figures(lc) == before
