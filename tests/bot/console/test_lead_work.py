"""A lead an operator can work, through Flask's test client on figures made by scripted LINE users (signed
webhooks and the worker): notes, the assignee and the status history (each change audited, refused with
403 to an operator who may not change anything), the advice at the level of the owner's answer, the
leads list's search, total, sort and page numbers, the badge, and no LINE user ID in any console URL."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from bot.console import audit, auth, keys
from bot.console import leads as leads_mod
from conversations import analytics as analytics_mod
from conversations.keys import Subject, TeamRef
from conversations.lead_work import NOTE_MAX, LeadWork
from conversations.teams import TeamStore
from scoring.periods import Quarter
from tests.bot.console.conftest import LineConsole, csrf_of
from tests.bot.console.test_leads_overview import DAY, analytics, take
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_booking import AVAILABILITY, postbacks


@pytest.fixture
def people(line_console: LineConsole) -> dict[str, LineUser]:
    """Five LINE users: B at Q10 (its point at level B), C at Q10 (level C), ten A, a D, one that stopped;
    two of them named."""
    lc = line_console
    found = {name: take(lc, answers) for name, answers in
             [("b", "AAAAAAAAAB"), ("c", "AAAAAAAAAC"), ("ace", "AAAAAAAAAA"), ("d", "DDDDDDDDDD"),
              ("stop", "AB")]}
    a = analytics(lc)
    a.set_name("line", found["b"].user_id, "山田商店")
    a.set_name("line", found["c"].user_id, "Yamamoto Shop")
    return found


def audited(lc: LineConsole, lead_id: str) -> list[tuple[str, str, str]]:
    """The audit log's entries about a lead, oldest first: (who, action, detail)."""
    return [(e.who, e.action, e.detail) for e in reversed(audit.for_target(lc.r, audit.lead_target(lead_id), 50))]


def lead_of(lc: LineConsole, user: LineUser) -> analytics_mod.Lead:
    return analytics(lc).person("line", user.user_id)[-1]


def test_the_advice_is_the_one_for_the_answers_level(line_console: LineConsole, people: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    q10 = lc.svc.script.questions[9]
    assert q10.advice_b != q10.advice_cd
    for name, shown, hidden in [("b", q10.advice_b, q10.advice_cd), ("c", q10.advice_cd, q10.advice_b)]:
        page = lc.http.get(f"/console/leads/{lc.ref(lead_of(lc, people[name]).id)}").get_data(as_text=True)
        found = re.search(r'<p id="lead-advice-text" data-level="([BCD])">(.*?)</p>', page, re.S)
        assert found and found.group(1) == name.upper(), name
        assert _unescape(found.group(2)) == shown and hidden not in _unescape(page), name


def _unescape(html: str) -> str:
    import html as html_mod

    return html_mod.unescape(html)


def test_notes_assignee_and_status_history_with_who_and_when(line_console: LineConsole,
                                                              people: dict[str, LineUser]) -> None:
    lc = line_console
    lc.login()
    lead = lead_of(lc, people["b"])
    ref = lc.ref(lead.id)
    url = f"/console/leads/{ref}"
    page = lc.http.get(url).get_data(as_text=True)
    assert 'id="no-notes"' in page and 'id="no-history"' in page and 'id="assignee-current">未定<' in page
    people["b"].tap("k:1")  # the owner taps 相談する on the result
    lc.settle()
    lead = lead_of(lc, people["b"])
    assert lead.consult == "new" and lead.requested == lc.clock()
    token = csrf_of(page)
    form = re.search(r'name="form" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    # a note, sent twice from the same form (a double tap): one note
    for _ in range(2):
        res = lc.http.post(f"{url}/note",
                           data={"csrf_token": token, "form": form, "note": "電話で相談の日程を調整。\n来週火曜"})
        assert res.status_code == 302 and res.headers["Location"].startswith(url)
    lc.clock.advance(60)
    assert lc.http.post(f"{url}/note", data={"csrf_token": token, "form": "other", "note": "   "}).status_code == 302
    long = lc.http.post(f"{url}/note", data={"csrf_token": token, "form": "long", "note": "x" * (NOTE_MAX + 1)},
                        follow_redirects=True).get_data(as_text=True)
    assert f"{NOTE_MAX}文字まで" in long
    # the assignee, then the consultation status
    assert lc.http.post(f"{url}/assign", data={"csrf_token": token, "assignee": " 佐藤 "}).status_code == 302
    assert lc.http.post(f"{url}/assign", data={"csrf_token": token, "assignee": "佐藤"}).status_code == 302  # same
    lc.clock.advance(60)
    assert lc.http.post(f"{url}/consult", data={"csrf_token": token, "status": "contacted"}).status_code == 302
    page = lc.http.get(url).get_data(as_text=True)
    notes = re.findall(r'<li class="lead-note">.*?class="note-by">([^<]*)<.*?class="note-text">([^<]*)<', page, re.S)
    assert notes == [("console", "電話で相談の日程を調整。\n来週火曜")]
    assert 'id="assignee-current">佐藤<' in page and '<option value="佐藤">' in page
    history = re.findall(r'<tr class="history-row" data-field="(\w+)"><td>([^<]+)</td><td class="history-by">([^<]*)'
                         r'</td>\s*<td class="history-change">\s*([^<]*?)\s*</td>', page)
    assert [(f, by, change) for f, _, by, change in history] == [
        ("status", "console", "相談状況：未対応 → 連絡済み"), ("assignee", "console", "担当者：未定 → 佐藤"),
        ("requested", "お客様", "お客様が相談を申し込みました")]
    assert history[0][1] != history[1][1]  # when: a minute apart, newest first
    # each change audited once, naming the lead by a hash, never with the note's text
    assert audited(lc, lead.id) == [("console", "lead.note", ""), ("console", "lead.assign", "佐藤"),
                                    ("console", "lead.status", "contacted")]
    stream = repr(lc.r.xrange(keys.AUDIT))
    assert lead.user_id not in stream and "来週火曜" not in stream
    # the notes and history belong to the person: erased with them
    work = LeadWork(lc.r, clock=lc.clock)
    assert work.notes(lead.id) and work.history(lead.id)
    total = _total(lc.http.get("/console/leads").get_data(as_text=True))
    assert lc.http.post(f"{url}/erase", data={"csrf_token": token, "confirm": "yes"}).status_code == 302
    assert work.notes(lead.id) == [] and work.history(lead.id) == []
    assert not lc.r.keys(f"*{lead.user_id}*")
    assert _total(lc.http.get("/console/leads").get_data(as_text=True)) == total - 1
    assert lc.http.get(url).status_code == 404
    assert audited(lc, lead.id)[-1][:2] == ("console", "lead.erase")


def _total(html: str) -> int:
    found = re.search(r'id="leads-total">(\d+)件<', html)
    assert found, "no total"
    return int(found.group(1))


def test_a_viewer_changes_nothing(line_console: LineConsole, people: dict[str, LineUser],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lc = line_console
    lc.login()
    lead = lead_of(lc, people["c"])
    url = f"/console/leads/{lc.ref(lead.id)}"
    token = csrf_of(lc.http.get(url).get_data(as_text=True))
    monkeypatch.setattr(auth, "may_change", lambda: False)
    before = lc.r.xlen(keys.AUDIT)
    page = lc.http.get(url).get_data(as_text=True)
    assert 'id="work-read-only"' in page and 'id="note-form"' not in page and 'id="assign-form"' not in page
    for action, data in [("note", {"note": "x", "form": "f"}), ("assign", {"assignee": "佐藤"}),
                         ("consult", {"status": "closed"}), ("erase", {"confirm": "yes"})]:
        res = lc.http.post(f"{url}/{action}", data={"csrf_token": token, **data})
        assert res.status_code == 403, action
    after = analytics(lc).lead(lead.id)
    assert after == lead and lc.r.xlen(keys.AUDIT) == before
    work = LeadWork(lc.r, clock=lc.clock)
    assert work.notes(lead.id) == [] and work.history(lead.id) == []


def test_leads_search_total_sort_and_page_numbers(line_console: LineConsole, people: dict[str, LineUser],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    lc = line_console
    lc.login()

    def rows(query: str) -> tuple[list[str], str]:
        html = lc.http.get("/console/leads" + query).get_data(as_text=True)
        return re.findall(r'<tr class="lead-row" data-lead="[^"]+" data-tier="([ABC]?)"', html), html

    tiers, html = rows("")
    assert tiers == ["", "C", "A", "A", "A"] and _total(html) == 5  # newest first: stop, d, ace, c, b
    tiers, html = rows("?sort=tier")
    assert tiers == ["A", "A", "A", "C", ""] and 'value="tier" selected' in html
    assert rows("?q=山田")[0] == ["A"] and _total(rows("?q=山田")[1]) == 1
    assert "Yamamoto Shop" in rows("?q=yamamoto")[1]
    from bot.logs import uid

    part = uid(people["d"].user_id)[2:8]
    assert rows(f"?q={part}")[0] == ["C"]
    assert rows(f"?q={people['ace'].user_id[3:15]}")[0] == ["A"]  # part of a user ID
    assert rows("?q=nobody")[0] == [] and _total(rows("?q=nobody")[1]) == 0
    csv_lines = lc.http.get("/console/export/leads.csv?q=山田").data.decode("utf-8-sig").split("\r\n")
    assert len(csv_lines) == 3 and ",山田商店," in csv_lines[1]  # the CSV as the list: header, the match, ""
    csv_sorted = lc.http.get("/console/export/leads.csv?sort=tier").data.decode("utf-8-sig").split("\r\n")
    assert [line.split(",")[7] for line in csv_sorted[1:-1]] == ["A", "A", "A", "C", ""]
    # status sort: a requested consultation first
    analytics(lc).set_consult_status(lead_of(lc, people["ace"]).id, "booked", by="console", now=lc.clock())
    analytics(lc).set_consult_status(lead_of(lc, people["c"]).id, "new", by="console", now=lc.clock())
    tiers, html = rows("?sort=status")
    assert tiers[:2] == ["A", "A"] and re.findall(r'data-consult="(\w*)"', html)[:3] == ["new", "booked", ""]
    # the badge opens the new requests
    badge = re.search(r'<a href="([^"]+)" class="badge" id="open-consult-badge"[^>]*>1<', html)
    assert badge and badge.group(1) == "/console/leads?consult=new"
    assert rows("?consult=new")[0] == ["A"]
    # page numbers, two to a page
    monkeypatch.setattr(leads_mod, "PAGE_SIZE", 2)
    tiers, html = rows("?sort=tier&page=2")
    assert tiers == ["A", "C"] and _total(html) == 5
    pager = re.search(r'<nav class="pager" id="leads-pager".*?</nav>', html, re.S).group(0)  # type: ignore[union-attr]
    assert re.findall(r'class="page-number[^"]*"[^>]*>(\d)<', pager) == ["1", "2", "3"]
    assert 'aria-current="page" title="2ページ目">2<' in pager
    links = re.findall(r'href="([^"]+)"', pager)
    assert "/console/leads?sort=tier&amp;page=3" in links and "/console/leads?sort=tier" in links
    assert rows("?sort=tier&page=3")[0] == [""]


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []  # followed: links, images, scripts, styles, forms that GET
        self.posts: list[str] = []  # only checked: where forms POST

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        for name in ("href", "src", "action"):
            value = found.get(name)
            if value:
                posts = tag == "form" and (found.get("method") or "get").lower() == "post"
                (self.posts if posts else self.urls).append(value)


def book_in_line(lc: LineConsole, user: LineUser) -> None:
    """相談する in LINE, then the first free slot offered."""
    before = len(lc.fake.delivered(user.user_id))
    user.say("相談する")
    lc.settle()
    slots = next(m for m in lc.fake.delivered(user.user_id)[before:] if m["type"] == "flex")
    user.tap(postbacks(slots)[0]["data"])
    lc.settle()


def test_no_console_url_holds_a_line_user_id(line_console: LineConsole, people: dict[str, LineUser]) -> None:
    """Crawl: from the overview, every same-origin link, image, script, style and form target of every page
    reached; none names a scripted user, nor does any page's HTML. Besides the diagnoses: a consultation
    booked in LINE after a diagnosis, one asked for and booked with no diagnosis (a lead numbered 0), and a
    Slack team with a reported quarter."""
    lc = line_console
    analytics(lc).set_consult_status(lead_of(lc, people["b"]).id, "new", by="console", now=lc.clock())
    assert lc.svc.bookings is not None
    lc.svc.bookings.set_availability(AVAILABILITY)
    book_in_line(lc, people["c"])
    asker = lc.user()
    asker.follow()
    lc.settle()
    book_in_line(lc, asker)
    [asked] = analytics(lc).person("line", asker.user_id)
    assert asked.number == 0 and asked.consult == "new"  # a request; the booking is beside it
    booked = [b for u in (people["c"], asker) for b in lc.svc.bookings.bookings_of(Subject("line", u.user_id))]
    assert len(booked) == 2 and all(b.active for b in booked)
    teams = TeamStore(lc.r)
    team = TeamRef("T0CRAWL", "C0CRAWL")
    teams.register(team, "巡回チーム", "Asia/Tokyo", "U0CRAWL", lc.clock() - 100 * DAY)
    teams.submit(team, Quarter(2025, 4), {"active_members": 80, "nps": 15}, "U0CRAWL", lc.clock())
    lc.login()
    ids = [u.user_id for u in [*people.values(), asker]]
    seen: set[str] = set()
    todo = ["/console/"]
    pages = 0
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        res = lc.http.get(path)
        assert res.status_code == 200, path
        if res.mimetype != "text/html":
            continue
        pages += 1
        html = res.get_data(as_text=True)
        assert not [x for x in ids if x in html], path
        parser = _Links()
        parser.feed(html)
        for url in parser.posts:
            assert not [x for x in ids if x in url], url
        for url in parser.urls:
            assert not [x for x in ids if x in url], url
            full = urlsplit(urljoin("http://localhost" + path, url))
            if full.netloc == "localhost" and full.path.startswith("/console") and "logout" not in full.path:
                todo.append(full.path + (f"?{full.query}" if full.query else ""))
    leads_seen = [p for p in seen if re.match(r"^/console/leads/[0-9a-f]+-[0-9a-f]{20}$", p)]
    people_seen = [p for p in seen if p.startswith("/console/people/")]
    assert len(leads_seen) == 6 and people_seen and pages > 10, sorted(seen)  # five diagnoses, one asked with none
    assert lc.ref(asked.id) in " ".join(leads_seen)
    assert f"/console/teams/{team.id}" in seen and f"/console/teams/{team.id}/trend.svg" in seen
    assert "/console/bookings" in seen and "/console/availability" in seen
