"""The console's booking API and the iCalendar feed, through Flask's test client on a real Redis: the
availability (Bearer token as /console/api/funnel; a bad value is 400 naming its field and changes
nothing; a session's write needs its CSRF token), the bookings of a date range with the lead's tier and
A count (from a diagnosis taken through signed LINE webhooks), and the feed at its secret, rotatable URL."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from conversations.analytics import Analytics
from conversations.booking import Booked, Bookings
from conversations.keys import Subject
from conversations.transports import Transport
from tests.bot.console.conftest import TOKEN, Console, LineConsole
from tests.bot.console.test_leads_overview import take

JST = ZoneInfo("Asia/Tokyo")
AUTH = {"Authorization": f"Bearer {TOKEN}"}
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {"mon": [["10:00", "12:00"], ["13:00", "17:00"]], "wed": [["10:00", "12:00"]]},
    "closed_dates": ["2026-01-14"], "reminder_hour": 18, "reminder_hours_before": None, "format": "オンライン（Zoom）",
}


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


def with_(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(AVAILABILITY)
    data.update(changes)
    return data


# ---- availability ---------------------------------------------------------------------------------------


def test_availability_put_and_get(console: Console) -> None:
    http = console.http
    assert http.get("/console/api/availability").status_code == 401
    assert http.get("/console/api/availability", headers={"Authorization": "Bearer wrong-token-000000"}).status_code \
        == 401
    missing = http.get("/console/api/availability", headers=AUTH)
    assert missing.status_code == 404 and missing.get_json() == {"error": "no availability is set"}
    put = http.put("/console/api/availability", json=AVAILABILITY, headers=AUTH)
    assert put.status_code == 200 and put.get_json() == AVAILABILITY
    assert http.get("/console/api/availability", headers=AUTH).get_json() == AVAILABILITY


@pytest.mark.parametrize(("body", "field", "error"), [
    (with_(weekly={"mon": [["10:00", "12:00"], ["13:00", "12:00"]]}), "weekly.mon[1]",
     "weekly.mon[1]: end 12:00 is not after start 13:00"),
    (with_(weekly={"mon": [["10:00", "12:00"], ["11:00", "13:00"]]}), "weekly.mon[1]",
     "weekly.mon[1]: overlaps weekly.mon[0] (10:00-12:00 and 11:00-13:00)"),
    (with_(slot_minutes=300), "slot_minutes", "slot_minutes: 300 is not between 10 and 240"),
    (with_(capacity=0), "capacity", "capacity: 0 is not between 1 and 50"),
    (with_(timezone="Asia/Nowhere"), "timezone", "timezone: unknown time zone 'Asia/Nowhere'"),
    (with_(colour="red"), "colour", "colour: unknown field"),
])
def test_a_bad_availability_is_400_naming_the_field_and_changes_nothing(console: Console, body: dict[str, Any],
                                                                       field: str, error: str) -> None:
    console.http.put("/console/api/availability", json=AVAILABILITY, headers=AUTH)
    res = console.http.put("/console/api/availability", json=body, headers=AUTH)
    assert res.status_code == 400 and res.get_json() == {"error": error, "field": field}
    assert console.http.get("/console/api/availability", headers=AUTH).get_json() == AVAILABILITY


def test_a_body_that_is_not_json_is_400(console: Console) -> None:
    res = console.http.put("/console/api/availability", data=b"timezone=Asia/Tokyo", headers=AUTH)
    assert res.status_code == 400 and res.get_json()["field"] == "availability"


def test_a_sessions_write_needs_its_csrf_token(logged_in: Console) -> None:
    http = logged_in.http
    assert http.get("/console/api/availability").status_code == 404  # a logged-in session reads
    refused = http.put("/console/api/availability", json=AVAILABILITY)
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["error"]
    assert http.get("/console/api/availability").status_code == 404
    ok = http.put("/console/api/availability", json=AVAILABILITY, headers={"X-CSRFToken": logged_in.csrf()})
    assert ok.status_code == 200


# ---- bookings and the feed ----------------------------------------------------------------------------------


@pytest.fixture
def booked(line_console: LineConsole) -> dict[str, Any]:
    """A LINE user who finished the diagnosis (7 A: tier B) and booked; another who booked without one and
    cancelled. The clock: 2026-01-01 09:00 Japan time, then a few minutes on."""
    lc = line_console
    assert lc.http.put("/console/api/availability", json=AVAILABILITY, headers=AUTH).status_code == 200
    shop = take(lc, "AAAAAAABBC")
    store = Bookings(lc.r, clock=lc.clock)
    first = store.book(Subject(Transport.LINE, shop.user_id), jst("2026-01-05T10:00"), "ev-1")
    other = Subject(Transport.LINE, "U" + "f" * 32)
    second = store.book(other, jst("2026-01-05T10:30"), "ev-2")
    assert isinstance(first, Booked) and isinstance(second, Booked)
    store.cancel(second.booking.id, by="lead")
    take(lc, "AB", shop)  # a retake under way: the finished diagnosis still tells the tier
    Analytics(lc.r).set_name("line", shop.user_id, "テスト通販")
    return {"store": store, "shop": shop, "first": first.booking, "second": second.booking, "other": other}


def test_bookings_of_a_date_range(line_console: LineConsole, booked: dict[str, Any]) -> None:
    http = line_console.http
    res = http.get("/console/api/bookings?from=2026-01-05&to=2026-01-05", headers=AUTH)
    assert res.status_code == 200
    first, second = booked["first"], booked["second"]
    created = datetime.fromtimestamp(round(first.created), JST).isoformat()
    assert res.get_json() == [
        {"id": first.id, "lead": "line:" + booked["shop"].user_id, "start": "2026-01-05T10:00:00+09:00",
         "end": "2026-01-05T10:30:00+09:00", "status": "booked", "tier": "B", "a_count": 7, "created": created},
        {"id": second.id, "lead": "line:" + booked["other"].user_id, "start": "2026-01-05T10:30:00+09:00",
         "end": "2026-01-05T11:00:00+09:00", "status": "cancelled", "tier": None, "a_count": None,
         "created": datetime.fromtimestamp(round(second.created), JST).isoformat()},
    ]
    only = http.get("/console/api/bookings?from=2026-01-05&to=2026-01-05&status=cancelled", headers=AUTH)
    assert [x["id"] for x in only.get_json()] == [second.id]
    assert http.get("/console/api/bookings?from=2026-01-06&to=2026-01-30", headers=AUTH).get_json() == []
    assert [x["id"] for x in http.get("/console/api/bookings", headers=AUTH).get_json()] == [first.id, second.id]
    for bad in ("from=2026-01-05&to=2026-01-04", "from=05/01/2026", "from=2026-01-01&to=2027-06-01",
                "status=maybe"):
        assert http.get(f"/console/api/bookings?{bad}", headers=AUTH).status_code == 400, bad
    assert http.get("/console/api/bookings").status_code == 401


def feed_events(http: Any, url: str) -> dict[str, icalendar.Event]:
    res = http.get(url)
    assert res.status_code == 200 and res.mimetype == "text/calendar"
    return {str(e["uid"]): e for e in icalendar.Calendar.from_ical(res.get_data()).walk("VEVENT")}


def test_the_feed_at_its_secret_url(line_console: LineConsole, booked: dict[str, Any]) -> None:
    http = line_console.http
    assert http.get("/console/api/calendar").status_code == 401
    url = http.get("/console/api/calendar", headers=AUTH).get_json()["url"]
    assert url.startswith("http://localhost/console/calendar/") and url.endswith(".ics")
    assert http.get("/console/api/calendar", headers=AUTH).get_json()["url"] == url  # made once
    path = url.removeprefix("http://localhost")
    got = feed_events(http, path)
    first, second = booked["first"], booked["second"]
    assert set(got) == {first.id + "@crmbot", second.id + "@crmbot"}
    mine = got[first.id + "@crmbot"]
    assert str(mine["summary"]) == "テスト通販様 ご相談"
    assert str(got[second.id + "@crmbot"]["summary"]) == "お名前未取得様 ご相談"
    assert str(mine["status"]) == "CONFIRMED" and int(mine["sequence"]) == 0
    assert mine.decoded("dtstart") == jst("2026-01-05T10:00")
    description = str(mine["description"]).split("\n")
    assert {"評価: B評価", "Aの数: 7/10"} <= set(description)
    assert any(line.startswith("次に整えたい一点: Q10 ") for line in description)
    assert any(line.startswith("Q10 ") and line.endswith(": C") for line in description)
    assert str(got[second.id + "@crmbot"]["status"]) == "CANCELLED"
    # moved: the same UID, a higher SEQUENCE, the new time
    booked["store"].book(Subject(Transport.LINE, booked["shop"].user_id), jst("2026-01-07T10:00"), "ev-3")
    moved = feed_events(http, path)[first.id + "@crmbot"]
    assert int(moved["sequence"]) == 1 and moved.decoded("dtstart") == jst("2026-01-07T10:00")
    # a wrong token, then a rotation: the old URL is gone
    assert http.get(path.replace(".ics", "x.ics")).status_code == 404
    assert http.get("/console/calendar/.ics").status_code == 404
    rotated = http.post("/console/api/calendar/rotate", headers=AUTH).get_json()["url"]
    assert rotated != url
    assert http.get(path).status_code == 404
    assert len(feed_events(http, rotated.removeprefix("http://localhost"))) == 2


def test_no_feed_before_a_token_is_made(console: Console) -> None:
    assert console.http.get("/console/calendar/anything.ics").status_code == 404
