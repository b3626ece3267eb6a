"""The overview, the funnel API, the leads pages, the consultation status and leads.csv, on figures made
by scripted LINE users through signed webhooks and the worker (which applies the figures)."""

from __future__ import annotations

import base64
import re

import pytest

from bot.console import leads as leads_mod
from bot.console.texts import JA
from bot.logs import uid
from conversations.analytics import Analytics, Lead
from tests.bot.console.conftest import TOKEN, Console, LineConsole, csrf_of
from tests.bot.line.helpers import LineUser

DAY = 86400.0


def take(lc: LineConsole, answers: str, user: LineUser | None = None) -> LineUser:
    """Start the diagnosis by its keyword and type the answers (as LINE users may)."""
    user = user or lc.user()
    user.say("診断")
    lc.settle()
    for letter in answers:
        lc.clock.advance(5)
        user.say(letter)
        lc.settle()
    return user


def analytics(lc: LineConsole) -> Analytics:
    return Analytics(lc.r, clock=lc.clock, expiry=lc.svc.config.conversation_ttl)


@pytest.fixture
def scripted(line_console: LineConsole) -> dict[str, LineUser]:
    """Four diagnoses: one finished with ten A, one finished as B that is retaken the next day (the
    retake stops at Q4), one stopped at Q3 long ago (no longer in progress)."""
    lc = line_console
    users = {"old": take(lc, "AB")}  # stops at Q3 ...
    lc.clock.advance(10 * DAY)  # ... and is no longer in progress
    users["ace"] = take(lc, "AAAAAAAAAA")
    users["retaker"] = take(lc, "AAAAAAABBC")
    lc.clock.advance(DAY)
    users["retaker"] = take(lc, "ABA", users["retaker"])
    return users


def test_funnel_api_equals_analytics(line_console: LineConsole, scripted: dict[str, LineUser]) -> None:
    lc = line_console
    a = analytics(lc)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    whole = lc.http.get("/console/api/funnel", headers=auth)
    assert whole.status_code == 200 and whole.mimetype == "application/json"
    # no consultation here (counted in test_consultation_pages.py)
    nobody_asked = {"requested": 0, "booked": 0, "attended": 0, "no_show": 0, "cancelled": 0}
    assert whole.get_json() == {**a.funnel(), "consultations": nobody_asked}
    body = whole.get_json()
    assert (body["started"], body["finished"], body["tiers"]) == (4, 2, {"A": 1, "B": 1, "C": 0})
    assert [q["shown"] for q in body["questions"]] == [4, 4, 4, 3, 2, 2, 2, 2, 2, 2]
    assert body["questions"][0]["answers"] == {"A": 2, "B": 0, "C": 0, "D": 0}
    # a date range (Japan time) and a channel
    for query, args in [("?from=2026-01-11&to=2026-01-11", {"start": "2026-01-11", "end": "2026-01-11"}),
                        ("?from=2026-01-01", {"start": "2026-01-01"}),
                        ("?to=2026-01-01", {"end": "2026-01-01"}),
                        ("?channel=line", {"channel": "line"}),
                        ("?channel=slack", {"channel": "slack"})]:
        from datetime import date

        kwargs = {k: date.fromisoformat(v) if k != "channel" else v for k, v in args.items()}
        got = lc.http.get("/console/api/funnel" + query, headers=auth)
        assert got.status_code == 200, query
        assert got.get_json() == {**a.funnel(**kwargs), "consultations": nobody_asked}, query
    assert lc.http.get("/console/api/funnel?from=2026-01-01", headers=auth).get_json()["started"] == 4
    assert lc.http.get("/console/api/funnel?to=2026-01-01", headers=auth).get_json()["started"] == 1
    assert lc.http.get("/console/api/funnel?channel=slack", headers=auth).get_json()["started"] == 0
    # the try-it users (tests) only when asked for by name: none here
    assert lc.http.get("/console/api/funnel?channel=web", headers=auth).get_json()["started"] == 0
    for bad in ("?from=2026-1-1", "?from=yesterday", "?from=2026-02-01&to=2026-01-01", "?channel=cli",
                "?channel=x"):
        res = lc.http.get("/console/api/funnel" + bad, headers=auth)
        assert res.status_code == 400 and "error" in res.get_json(), bad


def test_overview_shows_the_figures_and_their_charts(line_console: LineConsole,
                                                      scripted: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/").get_data(as_text=True)
    assert re.search(r'id="fig-started">4<', html) and re.search(r'id="fig-finished">2<', html)
    assert re.search(r'id="fig-tier-A">1<', html) and re.search(r'id="fig-tier-B">1<', html)
    assert re.search(r'id="fig-in-progress">1<', html)  # the retake
    assert re.search(r'id="fig-stopped">1<', html)  # the old one, ended at Q3 without an answer
    assert "診断開始 4 ＝ 完了 2 ＋ 回答中 1 ＋ 中断 1" in html
    cells = r'<td class="num">(\d+)</td>\s*'
    funnel = re.findall(r'<tr data-q="(\d+)"><td[^>]*>[^<]*</td>' + cells * 4 + r'<td class="num">([^<]+)</td>', html)
    # shown = answered + in progress + stopped here; the drop-off counts only those no longer in progress
    assert funnel[:4] == [("1", "4", "4", "0", "0", "0.0%"), ("2", "4", "4", "0", "0", "0.0%"),
                          ("3", "4", "3", "0", "1", "25.0%"), ("4", "3", "2", "1", "0", "0.0%")]
    assert "回答中の診断は、離脱に数えません" in html
    assert 'id="overview-empty"' not in html
    for name in ("tiers", "funnel", "answers"):  # drawn in the page (no request more), and alone at their address
        src = re.search(rf'id="chart-{name}" src="data:image/svg\+xml;base64,([^"]+)"', html)
        assert src and b"<svg" in base64.b64decode(src.group(1)), name
        res = lc.http.get(f"/console/charts/{name}.svg?from=2025-12-14&to=2026-01-12")
        assert res.status_code == 200 and res.mimetype == "image/svg+xml", name
        assert res.data == base64.b64decode(src.group(1)), name
    # the default range is the last 30 days, Japan time
    assert 'id="filter-to" value="2026-01-12"' in html and 'id="filter-from" value="2025-12-14"' in html


def test_an_empty_overview_says_how_to_see_data(logged_in: Console) -> None:
    html = logged_in.http.get("/console/").get_data(as_text=True)
    assert 'id="overview-empty"' in html and "crmbot demo" in html and "crmbot line setup" in html
    assert 'href="/console/try/"' in html


def test_overview_date_range_bucket_and_channel(line_console: LineConsole, scripted: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/?from=2026-01-11&to=2026-01-12&bucket=day").get_data(as_text=True)
    assert re.search(r'id="fig-started">3<', html)  # the ace, the retaker twice; not the old one (1 January)
    rows = re.findall(r"<tr><td>(2026-01-1\d)</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", html)
    assert rows == [("2026-01-12", "1", "0"), ("2026-01-11", "2", "2")]  # newest first
    month = lc.http.get("/console/?from=2025-12-01&to=2026-01-31&bucket=month").get_data(as_text=True)
    assert re.findall(r"<tr><td>(\d{4}-\d\d)</td>", month) == ["2026-01", "2025-12"]
    week = lc.http.get("/console/?from=2026-01-01&to=2026-01-14&bucket=week").get_data(as_text=True)
    assert re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td>", week) == ["2026-01-12", "2026-01-05", "2025-12-29"]
    slack = lc.http.get("/console/?channel=slack").get_data(as_text=True)
    assert re.search(r'id="fig-started">0<', slack)
    bad = lc.http.get("/console/?from=2026-13-01").get_data(as_text=True)
    assert 'id="filter-error"' in bad and 'id="chart-tiers"' not in bad
    assert lc.http.get("/console/charts/tiers.svg?from=nope").status_code == 404
    assert lc.http.get("/console/charts/other.svg").status_code == 404


def test_leads_page_lists_one_row_per_diagnosis_and_filters(line_console: LineConsole,
                                                             scripted: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    html = lc.http.get("/console/leads").get_data(as_text=True)
    rows = re.findall(r'<tr class="lead-row" data-lead="([^"]+)" data-tier="([ABC]?)"', html)
    assert len(rows) == 4
    assert [tier for _, tier in rows] == ["", "B", "A", ""]  # newest first
    assert uid(scripted["ace"].user_id) in html  # no display name: the hashed ID
    assert "AAAAAAABBC" in html and "Q10 " in html  # the answers and the point to fix
    assert "Q3で中断" in html and "回答中（Q4）" in html

    def tiers(query: str) -> list[str]:
        page = lc.http.get("/console/leads" + query).get_data(as_text=True)
        return re.findall(r'data-tier="([ABC]?)"', page)

    assert tiers("?tier=A") == ["A"]
    assert tiers("?progress=finished") == ["B", "A"]
    assert tiers("?progress=in_progress") == [""]
    assert tiers("?progress=stopped") == [""]
    assert tiers("?from=2026-01-12") == [""]
    assert tiers("?to=2026-01-01") == [""]
    assert tiers("?channel=slack") == []
    bad = lc.http.get("/console/leads?tier=Z").get_data(as_text=True)
    assert 'id="filter-error"' in bad


def test_consultation_status_is_set_from_the_lead_page_and_the_badge_counts_new_ones(
    line_console: LineConsole, scripted: dict[str, LineUser]
) -> None:
    lc = line_console
    lc.login()
    [lead] = analytics(lc).leads(tier="A")
    url = f"/console/leads/{lc.ref(lead.id)}"
    assert lc.http.get(f"/console/leads/{lead.id}").status_code == 404  # a raw id opens nothing
    page = lc.http.get(url).get_data(as_text=True)
    assert 'id="consult-form"' in page and 'id="open-consult-badge"' not in page
    token = csrf_of(page)
    # without the CSRF token: refused, nothing changes
    assert lc.http.post(f"{url}/consult", data={"status": "new"}).status_code == 400
    assert analytics(lc).lead(lead.id).consult == ""  # type: ignore[union-attr]
    res = lc.http.post(f"{url}/consult", data={"status": "new", "csrf_token": token})
    assert res.status_code == 302 and res.headers["Location"] == url
    assert analytics(lc).lead(lead.id).consult == "new"  # type: ignore[union-attr]
    page = lc.http.get(url).get_data(as_text=True)
    assert re.search(r'id="open-consult-badge"[^>]*>1<', page) and "相談状況を更新しました" in page
    lc.http.post(f"{url}/consult", data={"status": "contacted", "csrf_token": token})
    found = analytics(lc).lead(lead.id)
    assert found is not None and found.consult == "contacted" and found.consult_by == "console"
    page = lc.http.get("/console/leads?consult=contacted").get_data(as_text=True)
    assert 'id="open-consult-badge"' not in page and len(re.findall('class="lead-row"', page)) == 1
    # an unknown status or lead changes nothing
    res = lc.http.post(f"{url}/consult", data={"status": "lost", "csrf_token": token},
                       follow_redirects=True)
    assert "更新できませんでした" in res.get_data(as_text=True)
    assert analytics(lc).lead(lead.id).consult == "contacted"  # type: ignore[union-attr]
    res = lc.http.post("/console/leads/line:nobody:1-0/consult", data={"status": "new", "csrf_token": token})
    assert res.status_code == 404 and analytics(lc).lead("line:nobody:1-0") is None
    assert lc.http.get("/console/leads/line:nobody:1-0").status_code == 404


def test_person_page_compares_retakes(line_console: LineConsole, scripted: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    user = scripted["retaker"]
    latest = analytics(lc).person("line", user.user_id)[-1]
    assert lc.http.get(f"/console/people/line/{user.user_id}").status_code == 404  # the old URL
    html = lc.http.get(f"/console/people/{lc.ref(latest.id)}").get_data(as_text=True)
    assert len(re.findall(r"<th><a href=\"/console/leads/", html)) == 2
    q2 = re.search(r"<th>Q2 [^<]*</th>(.*?)</tr>", html, re.S)
    assert q2 and re.findall(r">([A-D][+-]?)<", q2.group(1)) == ["A", "B-"]  # the retake fell back at Q2
    assert lc.http.get("/console/people/1-00000000000000000000").status_code == 404
    assert leads_mod.compare([]) == [[] for _ in range(10)]


def test_leads_csv_bytes(line_console: LineConsole, scripted: dict[str, LineUser]) -> None:
    lc = line_console
    res = lc.http.get("/console/export/leads.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200 and res.mimetype == "text/csv"
    assert res.headers["Content-Disposition"] == 'attachment; filename="leads.csv"'
    data = res.data
    assert data[:3] == b"\xef\xbb\xbf"
    text = data[3:].decode("utf-8")
    lines = text.split("\r\n")
    assert lines[0] == ("チャネル,個人ID（ハッシュ）,診断回,お名前,開始日時,完了日時,進捗,評価,A の数,回答,"
                        "次に整えたい一点,リマインド,相談,相談日時,流入元,商材,月商,カート")
    assert lines[-1] == "" and len(lines) == 6  # header, four diagnoses, the final CRLF
    script = lc.svc.script
    ace = next(x for x in analytics(lc).leads(tier="A"))
    row = (f"line,{uid(scripted['ace'].user_id)},1,{uid(scripted['ace'].user_id)},{_when(ace.started)},"
           f"{_when(ace.finished)},完了,A,10,AAAAAAAAAA,{script.tiers['A'].next_theme.splitlines()[0]},なし,,,,,,")
    assert row in lines
    retake = next(x for x in analytics(lc).leads(status="in_progress"))
    assert (f"line,{uid(retake.user_id)},2,{uid(retake.user_id)},{_when(retake.started)},,回答中（Q4）,,,ABA,,なし,,"
            ",,,," in lines)  # no source, no qualification answers
    only_a = lc.http.get("/console/export/leads.csv?tier=A", headers={"Authorization": f"Bearer {TOKEN}"})
    assert only_a.data.decode("utf-8-sig").split("\r\n")[1:] == [row, ""]
    assert lc.http.get("/console/export/leads.csv?tier=Z",
                       headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 400


def _when(ts: float) -> str:
    from bot.console import fmt

    return fmt.when(ts)


def test_lead_shown_with_its_display_name_and_csv_guards_formulas(line_console: LineConsole) -> None:
    lc = line_console
    user = take(lc, "AAAAAAAAAA")
    a = analytics(lc)
    a.set_name("line", user.user_id, "=1+1 山田商店")
    lc.login()
    html = lc.http.get("/console/leads").get_data(as_text=True)
    assert "=1+1 山田商店" in html
    csv_text = lc.http.get("/console/export/leads.csv").data.decode("utf-8-sig")
    assert ",'=1+1 山田商店," in csv_text


def test_every_text_exists_in_both_languages() -> None:
    from bot.console.texts import EN

    assert set(JA) == set(EN)
    assert not set(JA) & set(dir(dict))  # Jinja would find a dict method first


def test_every_try_page_text_exists_in_both_languages() -> None:
    from bot.console.texts import TRY_TEXTS, try_texts

    assert set(TRY_TEXTS) == {"ja", "en"} and set(TRY_TEXTS["ja"]) == set(TRY_TEXTS["en"])
    assert not set(TRY_TEXTS["ja"]) & set(dir(dict))
    assert try_texts("en")["send"] == "Send" and try_texts("fr") is TRY_TEXTS["ja"]


def test_lead_progress_words() -> None:
    lead = Lead(id="line:U1:1-0", channel="line", user_id="U1", started=0.0, updated=100.0, reached=4,
                answers="ABC")
    assert leads_mod.progress(lead, JA, now=200.0, expiry=1000.0) == "回答中（Q4）"
    assert leads_mod.progress(lead, JA, now=2000.0, expiry=1000.0) == "Q4で中断"


def test_a_consultation_asked_for_before_any_diagnosis_is_a_lead_without_answers(line_console: LineConsole) -> None:
    lc = line_console
    user = lc.user()
    user.say("相談する")
    lc.settle()
    lc.login()
    html = lc.http.get("/console/leads").get_data(as_text=True)
    assert len(re.findall(r'<tr class="lead-row"', html)) == 1
    assert JA["progress_asked"] in html
    [lead] = analytics(lc).leads(consult="new")
    assert (lead.number, lead.answers, lead.user_id) == (0, "", user.user_id)
    assert analytics(lc).funnel()["started"] == 0  # not a diagnosis
    res = lc.http.get("/console/export/leads.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    [row] = res.data.decode("utf-8-sig").split("\r\n")[1:-1]
    assert row.startswith(f"line,{uid(user.user_id)},0,") and f",{JA['progress_asked']}," in row
    person = lc.http.get(f"/console/people/{lc.ref(lead.id)}")
    assert person.status_code == 200
    lead_page = lc.http.get(f"/console/leads/{lc.ref(lead.id)}")
    assert lead_page.status_code == 200 and JA["progress_asked"] in lead_page.get_data(as_text=True)
