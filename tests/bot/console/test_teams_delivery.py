"""The teams page (Slack teams, quarters, scores, trend chart), the KPI CSV and the delivery page
(parked messages, requeue, LINE's message quota)."""

from __future__ import annotations

import re

import pytest

from bot.console import parked as parked_mod
from bot.console import quota
from bot.console.texts import EN, JA
from bot.outbox import Parked
from conversations.analytics import Analytics
from conversations.keys import SLACK_NAMES_WANTED, TeamRef, slack_name
from conversations.kpi_catalog import load_catalog
from conversations.teams import TeamStore
from scoring.periods import Quarter
from tests.bot.console.conftest import TOKEN, Console, LineConsole
from tests.fakes.line_api import CONSUMPTION, PUSH, QUOTA, REPLY

HONTEN = TeamRef("T1", "C0CRM1")
SHITEN = TeamRef("T1", "C0CRM2")
Q3_2025 = Quarter(2025, 3)
Q4_2025 = Quarter(2025, 4)  # the last quarter that ended at the FakeClock's time (2026-01-01 09:00 in Tokyo)
NOV_2025 = 1_763_164_800.0
OCT_2025 = 1_759_449_600.0  # 2025-10-03 09:00 in Tokyo: Jul-Sep reported once it ended
FIGURES = {"active_members": 80, "complete_records": 92.5, "duplicate_records": 2, "satisfaction_score": 4.2,
           "nps": 15, "repeat_sales_growth": 5, "f2_rate": 30, "report_time_saved": 20}


def _teams(console: Console) -> TeamStore:
    store = TeamStore(console.r)
    store.register(HONTEN, "本店CRMチーム", "Asia/Tokyo", "U0ALICE", OCT_2025)
    store.register(SHITEN, "=支店", "Asia/Tokyo", "U0BOB", console.clock())
    store.submit(HONTEN, Q3_2025, FIGURES, "U0ALICE", OCT_2025)
    store.submit(HONTEN, Q4_2025, {**FIGURES, "nps": 30}, "U0ALICE", console.clock())
    return store


def test_teams_page_lists_every_team_and_which_quarters_are_reported(logged_in: Console) -> None:
    _teams(logged_in)
    html = logged_in.http.get("/console/teams").get_data(as_text=True)
    assert "本店CRMチーム" in html and "=支店" in html
    rows = {m.group(1): m.group(2) for m in re.finditer(r'data-team="([^"]+)">(.*?)</tr>', html, re.S)}
    honten, shiten = rows["T1:C0CRM1"], rows["T1:C0CRM2"]
    result = load_catalog().score(FIGURES | {"nps": 30})
    assert f'data-quarter="2025-Q4">{result.overall:.1f}<' in honten
    assert 'class="num missing" data-quarter="2025-Q2">未報告<' in honten
    assert 'class="num missing" data-quarter="2025-Q4">未報告<' in shiten
    assert 'data-quarter="2026-Q1"' not in html  # the running quarter: not yet reportable
    for area in result.areas:  # the latest quarter's five areas
        assert f">{area.score:.1f}<" in honten


def test_team_page_shows_each_quarter_reported_or_not_and_the_trend_chart(logged_in: Console) -> None:
    _teams(logged_in)
    html = logged_in.http.get("/console/teams/T1:C0CRM1").get_data(as_text=True)
    rows = re.findall(r'<tr class="(reported|missing)" data-quarter="([^"]+)"', html)
    assert rows == [("reported", "2025-Q4"), ("reported", "2025-Q3")]
    assert 'id="chart-team-trend"' in html
    svg = logged_in.http.get("/console/teams/T1:C0CRM1/trend.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert svg.data.startswith(b"<?xml") and b"<svg" in svg.data
    links = re.findall(rb'(?:href|src)="([^"]*)"', svg.data)
    assert links and all(link.startswith(b"#") for link in links)  # nothing loaded from elsewhere
    assert logged_in.http.get("/console/teams/T1:C0NOPE").status_code == 404
    assert logged_in.http.get("/console/teams/not-a-team").status_code == 404


def test_kpi_csv_bytes(console: Console) -> None:
    _teams(console)
    res = console.http.get("/console/export/kpi.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200 and res.mimetype == "text/csv"
    assert res.headers["Content-Disposition"] == 'attachment; filename="kpi.csv"'
    data = res.data
    assert data.startswith(b"\xef\xbb\xbf")
    lines = data[3:].decode("utf-8").split("\r\n")
    assert lines[-1] == "" and all("\n" not in line for line in lines)
    catalog = load_catalog()
    header = ("ワークスペース,チャンネル,チーム,四半期,報告者,報告日時,総合,"
              + ",".join(catalog.name(k) for k in catalog.area_keys) + ","
              + ",".join(f"{catalog.name(i.key)} ({i.unit})" for i in catalog.indicators))
    assert lines[0] == header
    q3 = catalog.score(FIGURES)
    figures = ",".join({"active_members": "80", "complete_records": "92.5", "duplicate_records": "2",
                        "satisfaction_score": "4.2", "nps": "15", "repeat_sales_growth": "5", "f2_rate": "30",
                        "report_time_saved": "20"}.get(i.key, "") for i in catalog.indicators)
    assert lines[1] == (f"T1,C0CRM1,本店CRMチーム,2025-Q3,U0ALICE,2025-10-03 09:00,{q3.overall:.1f},"
                        + ",".join(f"{a.score:.1f}" if a.score is not None else "" for a in q3.areas)
                        + "," + figures)
    assert lines[2].startswith("T1,C0CRM1,本店CRMチーム,2025-Q4,U0ALICE,2026-01-01 09:00,")
    assert len(lines) == 4  # header, two reported quarters, the final CRLF (the other team reported none)


def test_kpi_csv_guards_against_formulas(console: Console) -> None:
    store = TeamStore(console.r)
    store.register(SHITEN, "=HYPERLINK(\"x\")", "Asia/Tokyo", "U0BOB", console.clock())
    store.submit(SHITEN, Q4_2025, FIGURES, "U0BOB", console.clock())
    res = console.http.get("/console/export/kpi.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ",\"'=HYPERLINK(\"\"x\"\")\",2025-Q4," in res.data.decode("utf-8-sig")


def test_team_pages_name_quarters_by_business_year_people_and_channels_by_slack_name(logged_in: Console) -> None:
    _teams(logged_in)
    store = TeamStore(logged_in.r)
    store.register(SHITEN, "=支店", "Asia/Tokyo", "U0BOB", logged_in.clock(), fy_start=3)  # a year from March
    html = logged_in.http.get("/console/teams/T1:C0CRM1").get_data(as_text=True)
    periods = re.findall(r'<td class="period">([^<]+)</td>', html)
    assert periods == ["2025年度 第3四半期（10〜12月）", "2025年度 第2四半期（7〜9月）"]  # April's year, newest first
    assert "2025-Q4" not in re.sub(r'data-quarter="[^"]*"', "", html)
    # names not fetched yet: said so, never the raw IDs; asked of the worker
    assert re.search(r'id="team-channel">（名前を取得中）<', html) and "U0ALICE" not in html and ">C0CRM1<" not in html
    assert logged_in.r.smembers(SLACK_NAMES_WANTED) == {b"T1:C0CRM1", b"T1:U0ALICE"}
    logged_in.r.set(slack_name("T1", "C0CRM1"), "crm-honten")
    logged_in.r.set(slack_name("T1", "U0ALICE"), "Alice Sato")
    html = logged_in.http.get("/console/teams/T1:C0CRM1").get_data(as_text=True)
    assert re.search(r'id="team-channel">#crm-honten<', html)
    assert re.findall(r'<td class="reported-by">([^<]+)</td>', html) == ["Alice Sato", "Alice Sato"]
    # units on the figures and the targets
    nps = re.search(r'<tr data-indicator="nps">.*?class="num value">([^<]+)<.*?class="num target">([^<]+)<', html, re.S)
    assert nps and nps.group(1) == "30pt" and nps.group(2).endswith("pt")
    rate = re.search(r'<tr data-indicator="complete_records">.*?class="num value">([^<]+)<', html, re.S)
    assert rate and rate.group(1) == "92.5%"
    # the list: calendar quarters by their months; each team's latest by its own business year
    listing = logged_in.http.get("/console/teams").get_data(as_text=True)
    assert '<th class="num" data-quarter="2025-Q4">2025年10〜12月</th>' in listing
    assert re.search(r'data-team="T1:C0CRM1">.*?class="latest-period">2025年度 第3四半期（10〜12月）<', listing, re.S)


def test_the_trend_chart_names_quarters_by_business_year_and_draws_every_line_apart(logged_in: Console) -> None:
    store = _teams(logged_in)
    store.submit(HONTEN, Q4_2025, {k: 0 for k in FIGURES}, "U0ALICE", logged_in.clock())  # equal scores
    svg = logged_in.http.get("/console/teams/T1:C0CRM1/trend.svg").get_data(as_text=True)
    lines = {m.group(1): m.group(2) for m in re.finditer(r'<g id="series-(\d)">\s*<path d="([^"]+)"', svg)}
    assert len(lines) == len(load_catalog().area_keys) and len(set(lines.values())) == len(lines)  # none hidden
    dashes = re.findall(r'<g id="series-\d">\s*<path d="[^"]+"[^>]*?style="([^"]*)"', svg)
    assert len({re.sub(r"stroke: #[0-9a-f]+", "", d) for d in dashes}) == len(lines)  # each its own dash


def test_no_teams_yet(logged_in: Console) -> None:
    html = logged_in.http.get("/console/teams").get_data(as_text=True)
    assert 'id="no-teams"' in html


# ---- delivery ------------------------------------------------------------------------------------


def _park_one(lc: LineConsole) -> str:
    lc.fake.fail(REPLY, 403)
    user = lc.user()
    user.say("診断")
    lc.settle()
    assert len(lc.svc.outbox.parked()) == 1
    return user.user_id


def test_delivery_page_lists_parked_messages_and_requeues_one(line_console: LineConsole) -> None:
    lc = line_console
    user_id = _park_one(lc)
    lc.login()
    html = lc.http.get("/console/delivery").get_data(as_text=True)
    [parked] = lc.svc.outbox.parked()
    assert f'data-job="{parked.id}"' in html and "HTTP 403" in html
    assert user_id not in html  # only the hashed ID is shown
    # without the CSRF token nothing happens
    assert lc.http.post("/console/delivery/requeue", data={"job": parked.id}).status_code == 400
    assert lc.svc.outbox.parked() != []
    token = lc.csrf()
    res = lc.http.post("/console/delivery/requeue", data={"job": parked.id, "csrf_token": token})
    assert res.status_code == 302 and res.headers["Location"] == "/console/delivery"
    assert lc.svc.outbox.parked() == []
    html = lc.http.get("/console/delivery").get_data(as_text=True)
    assert "再送キューに戻しました" in html and 'id="parked-none"' in html
    lc.settle()
    assert len(lc.fake.delivered(user_id)) == 1  # the worker delivered it (by push: the reply token is gone)
    # requeueing it again does nothing
    res = lc.http.post("/console/delivery/requeue", data={"job": parked.id, "csrf_token": token},
                       follow_redirects=True)
    assert "再送できませんでした" in res.get_data(as_text=True)


def test_delivery_page_shows_the_line_quota_read_at_most_every_five_minutes(line_console: LineConsole) -> None:
    lc = line_console
    lc.login()
    lc.fake.quota = 1000
    user = lc.user()
    lc.fake.fail(REPLY, 400, body={"message": "Invalid reply token"})
    user.say("診断")
    lc.settle()  # one push counts against the quota (the fake counts pushes)
    assert lc.fake.recorded(CONSUMPTION) == []
    html = lc.http.get("/console/delivery").get_data(as_text=True)
    used_now = len([r for r in lc.fake.recorded(PUSH) if r.status == 200])
    assert re.search(rf'id="quota-used">{used_now}<', html), html
    assert f'id="quota-left">{1000 - used_now}<' in html and 'id="quota-limit">1000<' in html
    assert len(lc.fake.recorded(QUOTA)) == 1
    lc.http.get("/console/delivery")
    lc.client().get("/console/delivery")
    assert len(lc.fake.recorded(QUOTA)) == 1  # cached in Redis: no LINE call per page view
    assert 0 < lc.r.ttl(quota.CACHE_KEY) <= quota.TTL


def test_delivery_page_when_line_cannot_be_read(line_console: LineConsole) -> None:
    lc = line_console
    lc.login()
    lc.fake.fail(QUOTA, 500)
    html = lc.http.get("/console/delivery").get_data(as_text=True)
    assert "LINE から取得できませんでした" in html
    assert lc.r.ttl(quota.CACHE_KEY) <= quota.FAILED_TTL  # tried again a minute later, not five


def test_delivery_page_without_line(logged_in: Console) -> None:
    html = logged_in.http.get("/console/delivery").get_data(as_text=True)
    assert "LINE が設定されていません" in html and 'id="parked-none"' in html


@pytest.mark.parametrize("path", ["/console/", "/console/leads", "/console/teams", "/console/delivery",
                                  "/console/login"])
def test_pages_in_english(path: str, r, redis_url: str, clock, tmp_path) -> None:
    from tests.bot.console.conftest import console_config, make_console

    en = make_console(console_config(redis_url, tmp_path, locale="en"), r, clock)
    if path != "/console/login":
        en.login()
    html = en.http.get(path).get_data(as_text=True)
    assert '<html lang="en">' in html and not re.search(r"[\u3040-\u30ff]", html)  # no kana left
    if path != "/console/login":
        assert "Log out" in html


def test_a_parked_message_is_said_in_words_and_can_be_discarded(line_console: LineConsole) -> None:
    lc = line_console
    user_id = _park_one(lc)
    Analytics(lc.r).set_name("line", user_id, "山田商店")
    lc.login()
    html = lc.http.get("/console/delivery").get_data(as_text=True)
    [parked] = lc.svc.outbox.parked()
    card = re.search(rf'<li class="card parked" data-job="{parked.id}" data-cause="http_403">(.*?)</li>', html, re.S)
    assert card, html
    body = card.group(1)
    assert re.search(r'class="parked-who">山田商店 さん（LINE）<', body)
    assert "診断の質問" in re.search(r'class="parked-what">([^<]*)<', body).group(1)  # type: ignore[union-attr]
    assert "この送信は許可されていません" in body and "設定やプランを確認してから、再送してください" in body
    assert user_id not in html
    token = lc.csrf()
    assert lc.http.post("/console/delivery/discard", data={"job": parked.id}).status_code == 400  # no CSRF token
    res = lc.http.post("/console/delivery/discard", data={"job": parked.id, "csrf_token": token},
                       follow_redirects=True)
    assert "このメッセージを破棄しました" in res.get_data(as_text=True)
    assert lc.svc.outbox.parked() == []
    assert lc.svc.outbox.audit().orphans == []  # nothing left half-removed
    lc.settle()
    assert lc.fake.delivered(user_id) == []  # never sent
    res = lc.http.post("/console/delivery/discard", data={"job": parked.id, "csrf_token": token},
                       follow_redirects=True)
    assert "破棄できませんでした" in res.get_data(as_text=True)


@pytest.mark.parametrize(("reason", "cause", "detail"), [
    ("push: HTTP 400", "http_400", ""),
    ("reply: HTTP 401", "http_401", ""),
    ("push: HTTP 404", "http_404", ""),
    ("push: HTTP 429", "rate", ""),
    ("multicast: HTTP 503", "server", ""),
    ("push: TimeoutError", "network", ""),
    ("slack: channel_not_found", "slack_gone", ""),
    ("slack: not_in_channel", "slack_not_in_channel", ""),
    ("slack: token_revoked: the app is not installed in workspace T1 (uninstalled?)", "slack_auth", ""),
    ("slack: ratelimited", "rate", ""),
    ("slack: invalid_blocks", "slack_content", ""),
    ("TypeError", "bug", "TypeError"),
    ("reply outcome unknown after the reply window (CRMBOT_REPLY_UNKNOWN=park)", "reply_unknown", ""),
    ("unreadable record", "unreadable", ""),
    ("slack: something_new", "other", ""),
])
def test_what_the_api_answered_in_words(reason: str, cause: str, detail: str) -> None:
    assert parked_mod.cause_of(reason) == (cause, detail)
    for words in (JA, EN):
        assert words[f"why_{cause}"].format(detail=detail) and words[f"do_{cause}"]


def test_a_team_post_is_for_the_team_by_its_name(console: Console) -> None:
    _teams(console)
    job = Parked("j1", "slack", "t#1", 1.0, "slack: not_in_channel", 8, "T1.C0CRM1", "t:T1:C0CRM1",
                 ("slack_post", "slack_chart"))
    [view] = parked_mod.describe([job], console.r, JA)
    assert (view.who, view.what, view.cause) == ("チーム「本店CRMチーム」（Slack）", "KPIの投稿、KPIのグラフ",
                                                 "slack_not_in_channel")
    dm = Parked("j2", "slack", "u#2", 1.0, "slack: user_not_found", 8, "T1.U0ALICE", "u:slack:T1.U0ALICE",
                ("question",))
    [unnamed] = parked_mod.describe([dm], console.r, JA)
    assert unnamed.who == "Slackの利用者（名前未取得）" and "U0ALICE" not in unnamed.who
    assert console.r.smembers(SLACK_NAMES_WANTED) == {b"T1:U0ALICE"}  # asked of the worker, never of Slack here
    console.r.set(slack_name("T1", "U0ALICE"), "Alice")
    assert parked_mod.describe([dm], console.r, JA)[0].who == "Alice さん（Slack）"
