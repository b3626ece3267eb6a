"""The console's consultation pages through Flask's test client on a real Redis: the availability editor
(a form saved as the JSON contract; a bad value is 400 naming its field and changes nothing; the next free
slots skip closed dates and Japanese holidays), the calendar URL's rotation, the bookings page (upcoming /
past, dates, status), marking and cancelling (audit log, the app's booking-news hook called with the
right news, once per change), a viewer refused with 403, a lead page's bookings, and the funnel's
consultation counts (once per lead) in the API and on the overview."""

from __future__ import annotations

import html
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.booking_news import BookingNews
from bot.console import audit
from bot.console.consultations import Refused
from bot.console.consultations import change as change_booking
from conversations.analytics import Analytics
from conversations.booking import Booked, Booking, Bookings
from conversations.keys import Subject
from conversations.transports import Transport
from tests.bot.console.conftest import TOKEN, Console, LineConsole, console_config, csrf_of, make_console
from tests.bot.console.test_leads_overview import take
from tests.conftest import FakeClock

JST = ZoneInfo("Asia/Tokyo")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# The clock starts at 2026-01-01 09:00 Japan time (a Thursday, a holiday); Monday 2026-01-12 is a holiday too.
FORM = {"weekly_mon": "10:00-11:00, 13:00〜14:00", "weekly_wed": "１０:００-１１:００", "slot_minutes": "60",
        "capacity": "2", "min_notice_hours": "12", "horizon_days": "14", "closed_dates": "2026-01-07",
        "reminder_hour": "18", "reminder_hours_before": "3", "format": "電話"}
SAVED = {"timezone": "Asia/Tokyo", "slot_minutes": 60, "capacity": 2, "min_notice_hours": 12, "horizon_days": 14,
         "weekly": {"mon": [["10:00", "11:00"], ["13:00", "14:00"]], "wed": [["10:00", "11:00"]]},
         "closed_dates": ["2026-01-07"], "reminder_hour": 18, "reminder_hours_before": 3, "format": "電話"}
HALF_HOURS = {"timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 0,
              "horizon_days": 30, "weekly": {d: [["10:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
              "closed_dates": [], "reminder_hour": 18, "reminder_hours_before": None, "format": "オンライン（Zoom）"}


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def at(console: Console, text: str) -> None:
    """Move the clock (days on: log in again, the session has ended meanwhile)."""
    console.clock.t = jst(text).timestamp()
    assert console.login().status_code == 302


def save(console: Console, form: dict[str, str]) -> Any:
    token = console.csrf("/console/availability")
    return console.http.post("/console/availability", data={**form, "csrf_token": token})


def stored(console: Console) -> Any:
    found = Bookings(console.r, clock=console.clock).availability()
    return found.to_json() if found else None


@pytest.fixture
def audits(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What is written to the audit log (logins left out)."""
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(audit, "record", lambda _client, **kw: kw["action"] in ("login", "logout") or seen.append(kw))
    return seen


@pytest.fixture
def news(logged_in: Console) -> list[BookingNews]:
    heard: list[BookingNews] = []
    logged_in.svc.booking_news = heard.append
    return heard


# ---- the availability editor ------------------------------------------------------------------------------


def test_the_editor_saves_its_form_as_the_json_contract(logged_in: Console, audits: list[dict[str, Any]]) -> None:
    page = logged_in.http.get("/console/availability").get_data(as_text=True)
    assert 'id="availability-unsaved"' in page and 'id="preview-none"' in page  # a suggestion, not stored
    assert "日本の祝日は" in page and "Asia/Tokyo" in page and 'id="nav-availability"' in page
    assert stored(logged_in) is None
    res = save(logged_in, FORM)
    assert res.status_code == 302 and res.headers["Location"].endswith("/console/availability")
    assert stored(logged_in) == SAVED
    assert [(a["who"], a["action"]) for a in audits] == [("console", "availability.set")]
    page = logged_in.http.get("/console/availability").get_data(as_text=True)
    assert "受付設定を保存しました。" in page
    assert 'value="10:00-11:00, 13:00-14:00"' in page and 'value="電話"' in page
    # the next free slots: Monday the 5th, not Wednesday the 7th (closed) nor Monday the 12th (a holiday)
    starts = re.findall(r'<li data-start="([^"]+)"', page)
    assert starts == ["2026-01-05T10:00:00+09:00", "2026-01-05T13:00:00+09:00", "2026-01-14T10:00:00+09:00"]
    assert "残り2枠" in page


@pytest.mark.parametrize(("changes", "field", "name"), [
    ({"weekly_mon": "10:00-12:00, 11:00-13:00"}, "weekly.mon[1]", "weekly_mon"),
    ({"weekly_tue": "10:00"}, "weekly.tue[0]", "weekly_tue"),
    ({"weekly_fri": "17:00-10:00"}, "weekly.fri[0]", "weekly_fri"),
    ({"slot_minutes": "abc"}, "slot_minutes", "slot_minutes"),
    ({"capacity": "0"}, "capacity", "capacity"),
    ({"min_notice_hours": ""}, "min_notice_hours", "min_notice_hours"),
    ({"reminder_hours_before": "99"}, "reminder_hours_before", "reminder_hours_before"),
    ({"closed_dates": "2026-01-07\n2026-13-01"}, "closed_dates[1]", "closed_dates"),
    ({"format": "  "}, "format", "format"),
])
def test_a_bad_value_names_its_field_and_changes_nothing(logged_in: Console, audits: list[dict[str, Any]],
                                                         changes: dict[str, str], field: str, name: str) -> None:
    assert save(logged_in, FORM).status_code == 302
    res = save(logged_in, {**FORM, **changes})
    assert res.status_code == 400
    page = res.get_data(as_text=True)
    assert f'data-field="{field}"' in page and f"<code id=\"availability-error-detail\">{field}: " in page
    flagged = re.findall(r'name="([a-z_]+)"[^>]*aria-invalid="true"', page)
    assert flagged == [name]
    assert "保存していません。" in page
    for value in changes.values():  # what was typed is shown again, to correct
        assert value.strip() in page
    assert stored(logged_in) == SAVED
    assert len(audits) == 1  # the first save only


def test_the_forms_need_their_csrf_token(logged_in: Console) -> None:
    res = logged_in.http.post("/console/availability", data=FORM)
    assert res.status_code == 400 and stored(logged_in) is None
    assert logged_in.http.post("/console/availability/calendar").status_code == 400


def test_the_calendar_url_is_shown_and_rotated(logged_in: Console, audits: list[dict[str, Any]]) -> None:
    page = logged_in.http.get("/console/availability").get_data(as_text=True)
    url = re.search(r'value="(http://localhost/console/calendar/[^"]+\.ics)" id="calendar-url"', page)
    assert url
    old = url.group(1).removeprefix("http://localhost")
    assert logged_in.http.get(old).status_code == 200
    assert "Google カレンダー" in page and "Web から購読" in page
    res = logged_in.http.post("/console/availability/calendar", data={"csrf_token": csrf_of(page)})
    assert res.status_code == 302
    assert logged_in.http.get(old).status_code == 404
    page = logged_in.http.get("/console/availability").get_data(as_text=True)
    new = re.search(r'value="(http://localhost/console/calendar/[^"]+\.ics)" id="calendar-url"', page)
    assert new and new.group(1).removeprefix("http://localhost") != old
    assert logged_in.http.get(new.group(1).removeprefix("http://localhost")).status_code == 200
    assert [a["action"] for a in audits] == ["calendar.rotate"]


# ---- bookings ---------------------------------------------------------------------------------------------


@pytest.fixture
def two(logged_in: Console) -> dict[str, Booking]:
    """Two owners booked Monday 2026-01-05 at 10:00 and 11:00; the clock is then 10:45 that day."""
    store = Bookings(logged_in.r, clock=logged_in.clock)
    store.set_availability(HALF_HOURS)
    out = {}
    for name, when in (("early", "2026-01-05T10:00"), ("later", "2026-01-05T11:00")):
        done = store.book(Subject(Transport.LINE, "U" + name[0] * 32), jst(when), f"ev-{name}")
        assert isinstance(done, Booked)
        out[name] = done.booking
    at(logged_in, "2026-01-05T10:45")
    return out


def rows(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="booking-row" id="booking-[0-9a-f]+" data-booking="([0-9a-f]+)" '
                      r'data-status="([a-z_]+)"', html)


def test_the_bookings_page_upcoming_past_and_filters(logged_in: Console, two: dict[str, Booking]) -> None:
    http = logged_in.http
    early, later = two["early"].id, two["later"].id
    upcoming = http.get("/console/bookings").get_data(as_text=True)
    assert rows(upcoming) == [(later, "booked")]
    assert "2026-01-05（月） 11:00–11:30" in upcoming
    assert f'id="cancel-{later}"' in upcoming and f'id="attended-{later}"' not in upcoming  # not started
    past = http.get("/console/bookings?when=past").get_data(as_text=True)
    assert rows(past) == [(early, "booked")]
    assert f'id="attended-{early}"' in past and f'id="no-show-{early}"' in past
    assert rows(http.get("/console/bookings?when=past&status=cancelled").get_data(as_text=True)) == []
    assert rows(http.get("/console/bookings?from=2026-01-06&to=2026-01-31").get_data(as_text=True)) == []
    bad = http.get("/console/bookings?from=2026-01-31&to=2026-01-06").get_data(as_text=True)
    assert 'id="filter-error"' in bad and rows(bad) == []


def change(console: Console, booking: str, action: str, **form: str) -> Any:
    token = console.csrf("/console/bookings?when=past")
    return console.http.post(f"/console/bookings/{booking}/{action}",
                             data={**form, "csrf_token": token, "next": "/console/bookings?when=past"})


def test_mark_attended_calls_the_hook_once_with_the_news(logged_in: Console, two: dict[str, Booking],
                                                         news: list[BookingNews],
                                                         audits: list[dict[str, Any]]) -> None:
    early = two["early"]
    res = change(logged_in, early.id, "mark", status="attended")
    assert res.status_code == 302
    assert res.headers["Location"].endswith(f"/console/bookings?when=past#booking-{early.id}")
    [heard] = news
    assert heard.kind == "attended" and heard.lead == Subject(Transport.LINE, "U" + "e" * 32)
    assert heard.booking is not None and heard.booking.id == early.id and heard.booking.status == "attended"
    assert heard.by == "console" and heard.message == ""
    assert heard.news_id.startswith(f"console:{early.id}:0:attended:")
    assert [(a["who"], a["action"], a["target"], a["detail"]) for a in audits] == \
        [("console", "booking.mark", early.id, "attended")]
    assert Bookings(logged_in.r).booking(early.id).status == "attended"  # type: ignore[union-attr]
    # sent again (a double click, a retry): the same news, which hooks deduplicate; no second audit line
    change(logged_in, early.id, "mark", status="attended")
    assert [n.news_id for n in news] == [heard.news_id] * 2 and len(audits) == 1
    # corrected to no-show: another change, another news id
    change(logged_in, early.id, "mark", status="no_show")
    assert news[-1].kind == "no_show" and news[-1].news_id != heard.news_id and len(audits) == 2


def test_cancel_with_a_message_frees_the_place_and_tells_the_hook(logged_in: Console, two: dict[str, Booking],
                                                                  news: list[BookingNews],
                                                                  audits: list[dict[str, Any]]) -> None:
    later = two["later"]
    store = Bookings(logged_in.r, clock=logged_in.clock)
    assert all(s.free == 0 for s in store.free_slots() if s.start == later.start)
    res = change(logged_in, later.id, "cancel", message="  担当者の都合により、別の日時でお願いします。 ")
    assert res.status_code == 302
    [heard] = news
    assert heard.kind == "cancelled" and heard.message == "担当者の都合により、別の日時でお願いします。"
    assert heard.booking is not None and heard.booking.status == "cancelled" and heard.booking.seq == 1
    assert heard.news_id.startswith(f"console:{later.id}:1:cancelled:")
    assert [a["detail"] for a in audits] == ["cancelled with a message"]
    assert "担当者" not in repr(audits)  # never a message text in the audit log
    assert [s.free for s in store.free_slots() if s.start == later.start] == [1]
    page = logged_in.http.get("/console/bookings?status=cancelled").get_data(as_text=True)
    assert rows(page) == [(later.id, "cancelled")] and f'id="cancel-{later.id}"' not in page
    # a cancelled booking stays cancelled: nothing changes, nobody is told
    res = change(logged_in, later.id, "mark", status="attended")
    assert res.status_code == 302 and len(news) == 1
    assert "この予約は変更できませんでした" in logged_in.http.get("/console/bookings").get_data(as_text=True)


def test_what_cannot_change_changes_nothing(logged_in: Console, two: dict[str, Booking],
                                            news: list[BookingNews]) -> None:
    later = two["later"]
    change(logged_in, later.id, "mark", status="attended")  # not started yet
    change(logged_in, later.id, "mark", status="booked")  # not a mark
    change(logged_in, later.id, "cancel", message="あ" * 501)  # too long
    assert news == [] and Bookings(logged_in.r).booking(later.id) == later
    assert change(logged_in, "0123456789abcdef", "cancel").status_code == 404
    assert change(logged_in, "not-an-id", "mark", status="attended").status_code == 404


def test_a_viewer_gets_403_and_nothing_changes(logged_in: Console, two: dict[str, Booking], news: list[BookingNews],
                                               audits: list[dict[str, Any]]) -> None:
    feed = logged_in.http.get("/console/api/calendar").get_json()["url"]
    logged_in.add_operator("admin@example.jp", "Admin", "admin")
    logged_in.add_operator("view@example.jp", "閲覧 さん", "viewer")
    assert logged_in.login_as("view@example.jp").status_code == 302
    http = logged_in.http
    token = logged_in.csrf("/console/availability")
    early, later = two["early"], two["later"]
    for path, data in [("/console/availability", FORM), ("/console/availability/calendar", {}),
                       (f"/console/bookings/{early.id}/mark", {"status": "attended"}),
                       (f"/console/bookings/{later.id}/cancel", {"message": "x"})]:
        assert http.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert http.put("/console/api/availability", json=SAVED, headers={"X-CSRFToken": token}).status_code == 403
    assert stored(logged_in) == HALF_HOURS and http.get("/console/api/calendar").get_json()["url"] == feed
    store = Bookings(logged_in.r)
    assert store.booking(early.id) == early and store.booking(later.id) == later
    assert news == [] and audits == []
    # the pages show no button that would be refused
    page = http.get("/console/bookings?when=past").get_data(as_text=True)
    assert rows(page) and "booking-actions" not in page
    page = http.get("/console/availability").get_data(as_text=True)
    assert 'id="availability-save"' not in page and 'id="calendar-rotate"' not in page
    # the views check it themselves too, should a guard let a viewer's POST through
    with logged_in.app.test_request_context(f"/console/bookings/{later.id}/cancel", method="POST"), \
            pytest.raises(Refused):
        change_booking(logged_in.svc, later.id, "cancelled")
    assert store.booking(later.id) == later


def test_an_operator_acts_under_their_own_name(logged_in: Console, two: dict[str, Booking], news: list[BookingNews],
                                                audits: list[dict[str, Any]]) -> None:
    logged_in.add_operator("aiko@example.jp", "相談 アイコ", "operator")
    assert logged_in.login_as("aiko@example.jp").status_code == 302
    later = two["later"]
    assert change(logged_in, later.id, "cancel").status_code == 302
    assert [(n.kind, n.by) for n in news] == [("cancelled", "相談 アイコ")]
    assert [(a["who"], a["action"]) for a in audits] == [("相談 アイコ", "booking.cancel")]
    assert Bookings(logged_in.r).booking(later.id).by == "相談 アイコ"  # type: ignore[union-attr]
    res = logged_in.http.put("/console/api/availability", json=SAVED, headers=AUTH)  # the token acts as "api"
    assert res.status_code == 200 and audits[-1]["who"] == "api"


def test_a_lead_page_shows_its_bookings_with_the_actions(line_console: LineConsole) -> None:
    lc = line_console
    assert lc.login().status_code == 302
    heard: list[BookingNews] = []
    lc.svc.booking_news = heard.append
    shop = take(lc, "AAAAAAABBC")
    [lead] = Analytics(lc.r).person("line", shop.user_id)
    lead_id = lead.id
    page = lc.http.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    assert 'id="lead-no-bookings"' in page
    store = Bookings(lc.r, clock=lc.clock)
    store.set_availability(HALF_HOURS)
    done = store.book(Subject(Transport.LINE, shop.user_id), jst("2026-01-06T10:00"), "ev-lead")
    assert isinstance(done, Booked)
    page = lc.http.get(f"/console/leads/{lead_id}").get_data(as_text=True)
    assert rows(page) == [(done.booking.id, "booked")] and "2026-01-06（火） 10:00–10:30" in page
    res = lc.http.post(f"/console/bookings/{done.booking.id}/cancel",
                       data={"csrf_token": csrf_of(page), "next": f"/console/leads/{lead_id}", "message": ""})
    assert res.headers["Location"].endswith(f"/console/leads/{lead_id}#booking-{done.booking.id}")
    assert [(n.kind, n.lead, n.message) for n in heard] == [("cancelled", Subject(Transport.LINE, shop.user_id), "")]
    assert rows(lc.http.get(f"/console/leads/{lead_id}").get_data(as_text=True)) == [(done.booking.id, "cancelled")]


# ---- the funnel's consultations ---------------------------------------------------------------------------


def test_the_funnel_counts_each_lead_once(logged_in: Console) -> None:
    store = Bookings(logged_in.r, clock=logged_in.clock)
    store.set_availability(HALF_HOURS)
    lead = {n: Subject(Transport.LINE, f"U{n:032d}") for n in range(1, 7)}
    store.request_consultation(lead[1])
    store.request_consultation(lead[1])  # asked again: one lead
    store.request_consultation(lead[2])
    assert isinstance(store.book(lead[2], jst("2026-01-05T10:00"), "r2"), Booked)
    assert isinstance(store.book(lead[2], jst("2026-01-05T10:00"), "r2"), Booked)  # redelivered
    store.book(lead[3], jst("2026-01-05T10:30"), "r3")
    store.book(lead[3], jst("2026-01-06T10:30"), "r3b")  # rebooked elsewhere: still one booking
    first = store.book(lead[4], jst("2026-01-05T11:00"), "r4")
    assert isinstance(first, Booked)
    store.cancel(first.booking.id, by="owner")
    store.book(lead[4], jst("2026-01-07T11:00"), "r4b")  # booked again after cancelling: booked
    came = store.book(lead[5], jst("2026-01-05T11:30"), "r5")
    gone = store.book(lead[6], jst("2026-01-06T11:30"), "r6")
    assert isinstance(came, Booked) and isinstance(gone, Booked)
    cancelled = store.book(Subject(Transport.LINE, "U" + "c" * 32), jst("2026-01-08T10:00"), "r7")
    assert isinstance(cancelled, Booked)
    store.cancel(cancelled.booking.id, by="console")
    at(logged_in, "2026-01-07T09:00")
    store.mark(came.booking.id, "attended", by="console")
    store.mark(gone.booking.id, "no_show", by="console")
    expected = {"requested": 1, "booked": 3, "attended": 1, "no_show": 1, "cancelled": 1}
    http = logged_in.http
    assert http.get("/console/api/funnel", headers=AUTH).get_json()["consultations"] == expected
    assert http.get("/console/api/funnel?channel=line&from=2026-01-01&to=2026-01-01",
                    headers=AUTH).get_json()["consultations"] == expected
    nothing = dict.fromkeys(expected, 0)
    assert http.get("/console/api/funnel?channel=slack", headers=AUTH).get_json()["consultations"] == nothing
    assert http.get("/console/api/funnel?from=2026-01-02", headers=AUTH).get_json()["consultations"] == nothing
    page = http.get("/console/?from=2025-12-31&to=2026-01-07").get_data(as_text=True)
    shown = dict(re.findall(r'id="fig-consult-([a-z_]+)">(\d+)<', page))
    assert shown == {k: str(v) for k, v in expected.items()}


def test_the_pages_in_english(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> None:
    console = make_console(console_config(redis_url, tmp_path, locale="en"), r, clock)
    assert console.login().status_code == 302
    res = save(console, {**FORM, "weekly_mon": "10:00-12:00, 11:00-13:00"})
    assert res.status_code == 400
    assert 'Not saved. Please check "Monday, range 2".' in html.unescape(res.get_data(as_text=True))
    assert save(console, FORM).status_code == 302
    page = console.http.get("/console/availability").get_data(as_text=True)
    assert "2026-01-05 (Mon) 10:00–11:00" in page and "2 left" in page and "Subscribe from web" in page
    store = Bookings(r, clock=clock)
    done = store.book(Subject(Transport.LINE, "U" + "a" * 32), jst("2026-01-05T10:00"), "ev-en")
    assert isinstance(done, Booked)
    page = console.http.get("/console/bookings").get_data(as_text=True)
    assert "Consultation bookings" in page and ">Booked</span>" in page and "Cancel the booking" in page
