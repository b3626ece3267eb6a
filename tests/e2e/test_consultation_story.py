"""Issue 17's "Done when", told as one story through the real app: a LINE user with no diagnosis taps
相談する, picks a slot, gets the confirmation and exactly one reminder the day before; the operator sees the
booking on the console's bookings page, in ``GET /console/api/bookings``, in the iCalendar feed and in the
lead's Slack thread, where a person's reply reaches the user on LINE once (Slack's redelivery too) and the
user's answer comes back into the thread; a cancellation from the console reaches the feed (STATUS:CANCELLED),
the thread and the user. Then the funnel's consultation counts, exact for a few scripted users whose events
are redelivered and whose buttons are tapped twice.

Everything as it runs in production, in process: the app (`crmbot web`) behind signed LINE and Slack
webhooks, the worker as `crmbot worker` builds it, the clock's pass as `crmbot remind --now T` runs it, the
suite's real Redis, the fake LINE API (every request checked against LINE's OpenAPI spec) and the fake
Slack API (Block Kit checked). Time is injected."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import redis
from flask.testing import FlaskClient

from bot.cli import remind_cmd
from bot.config import Config
from conversations.keys import Subject
from conversations.transports import Transport
from tests.bot.line.conftest import line_config
from tests.bot.line.helpers import TOKEN as LINE_TOKEN
from tests.bot.line.helpers import LineUser
from tests.bot.line.test_handoff import Desk, make_desk, owner_lines, text
from tests.conftest import FakeClock
from tests.fakes.line_api import MARK_AS_READ, PUSH, FakeLineApi
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_signing import event_body

JST = ZoneInfo("Asia/Tokyo")
OPS = "C0OPERATOR"
SLACK_TOKEN = "xoxb-story-test"
SLACK_SECRET = "slack-signing-secret"
CONSOLE_TOKEN = "story-console-token-0123456789"
CONSOLE_PASSWORD = "story console password"
AUTH = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
SHOP = "山田 花子"
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "closed_dates": [], "reminder_hour": 18, "reminder_hours_before": None, "format": "オンライン（Zoom）",
}
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=JST)  # a Monday morning: the first slot offered is Tuesday 10:00
TUE_10 = int(datetime(2026, 12, 8, 10, 0, tzinfo=JST).timestamp())


def jst(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=JST).timestamp()


@pytest.fixture(scope="module")
def line_server() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=LINE_TOKEN) as fake:
        yield fake


@pytest.fixture(scope="module")
def slack_server() -> Iterator[FakeSlackApi]:
    with FakeSlackApi(bot_token=SLACK_TOKEN) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW.timestamp())


def story_config(redis_url: str, fake: FakeLineApi, slack: FakeSlackApi, data_dir: Path) -> Config:
    """One configuration for the web, the worker and the clock: LINE, Slack (the operator's channel), the
    console (its shared password and the API's token)."""
    return line_config(redis_url, fake).with_(
        slack_signing_secret=SLACK_SECRET, slack_bot_token=SLACK_TOKEN, slack_api_url=slack.base_url,
        operator_slack_channel=OPS, handoff_hours=24, console_password=CONSOLE_PASSWORD,
        console_token=CONSOLE_TOKEN, secret_key="k" * 40, data_dir=data_dir)


@pytest.fixture
def desk(r: redis.Redis, redis_url: str, line_server: FakeLineApi, slack_server: FakeSlackApi, clock: FakeClock,
         tmp_path: Path) -> Iterator[Desk]:
    line_server.reset()
    slack_server.reset()
    yield from make_desk(story_config(redis_url, line_server, slack_server, tmp_path), line_server, slack_server,
                         clock, r)
    line_server.assert_contract_ok()
    slack_server.assert_contract_ok()


# ---- what people do and see ------------------------------------------------------------------------------


def postbacks(node: Any) -> list[dict[str, Any]]:
    """Every postback action in a message, in order."""
    if isinstance(node, dict):
        own = [node] if node.get("type") == "postback" else []
        return own + [p for v in node.values() for p in postbacks(v)]
    if isinstance(node, list):
        return [p for v in node for p in postbacks(v)]
    return []


def said_after(desk: Desk, user: LineUser, act: Any) -> list[dict[str, Any]]:
    """What the user is told (replies and pushes) after ``act()``, once everything settled."""
    before = len(desk.env.fake.delivered(user.user_id))
    act()
    desk.settle()
    return desk.env.fake.delivered(user.user_id)[before:]


def carousel(messages: list[dict[str, Any]]) -> dict[str, Any]:
    [slots] = [m for m in messages if m["type"] == "flex" and m["contents"]["type"] == "carousel"]
    return slots


def login(desk: Desk) -> FlaskClient:
    """The operator's browser: its own cookies, logged in with the shared password."""
    browser: FlaskClient = desk.env.http.application.test_client()
    page = browser.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    res = browser.post("/console/login", data={"password": CONSOLE_PASSWORD, "csrf_token": token.group(1)})
    assert res.status_code == 302, res.get_data(as_text=True)[:300]
    return browser


def csrf(browser: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', browser.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


def booking_rows(page: str) -> list[tuple[str, str]]:
    return re.findall(r'<tr class="booking-row" id="booking-[0-9a-f]+" data-booking="([0-9a-f]+)" '
                      r'data-status="([a-z_]+)"', page)


def feed(desk: Desk) -> list[icalendar.Event]:
    url = desk.env.http.get("/console/api/calendar", headers=AUTH).get_json()["url"]
    res = desk.env.http.get(url.removeprefix("http://localhost"))
    assert res.status_code == 200 and res.mimetype == "text/calendar"
    return list(icalendar.Calendar.from_ical(res.get_data()).walk("VEVENT"))


def remind(desk: Desk, redis_url: str, when: str) -> str:
    """The clock's pass at ``when`` (``crmbot remind --now WHEN``, the command's own function), then the worker."""
    desk.clock.t = datetime.fromisoformat(when).timestamp()
    out = io.StringIO()
    config: Config = desk.env.svc.config  # the clock runs with the app's configuration
    assert config.redis_url == redis_url
    assert remind_cmd(config, when, False, out=out) == 0
    desk.settle()
    return out.getvalue()


def thread_texts(desk: Desk) -> list[str]:
    return [p["text"] for p in desk.thread()]


# ---- the story ----------------------------------------------------------------------------------------------


def test_a_user_with_no_diagnosis_books_is_reminded_and_talks_with_the_operator(desk: Desk, redis_url: str) -> None:
    env, http = desk.env, desk.env.http
    script = env.svc.script
    assert http.put("/console/api/availability", json=AVAILABILITY, headers=AUTH).status_code == 200
    user = env.user()
    env.fake.set_profile(user.user_id, SHOP)
    said_after(desk, user, user.follow)  # the display name is fetched once, at follow

    # 相談する (the rich menu's text), with no diagnosis: recorded, answered, the free slots shown
    asked = said_after(desk, user, lambda: user.send(text(user, "相談する", "tok-consult")))
    assert asked[0]["text"].startswith(script.text("consult_ack"))
    picks = postbacks(carousel(asked))
    assert picks[0]["data"] == f"bp:{TUE_10}" and picks[0]["label"] == "12/8（火）10:00"
    brief = desk.brief()
    assert "診断なし" in brief["text"] or any("診断なし" in str(b) for b in brief["blocks"])

    # a slot: booked, confirmed with the date, the time, the format and the buttons to change or cancel
    [card] = said_after(desk, user, lambda: user.tap(picks[0]["data"]))
    assert card["altText"].startswith(script.text("booking_booked"))
    assert "日時：12月8日（火）10:00〜10:30" in card["altText"] and "形式：オンライン（Zoom）" in card["altText"]
    [booking] = env.svc.bookings.bookings_of(Subject(Transport.LINE, user.user_id))  # type: ignore[union-attr]
    assert [p["label"] for p in postbacks(card)] == ["変更する", "キャンセルする"]

    # the operator: the lead's Slack thread (the brief, then the booking) ...
    assert thread_texts(desk) == ["📅 予約されました：2026-12-08 10:00–10:30（オンライン（Zoom））（オーナー）"]
    # ... the API ...
    api = http.get("/console/api/bookings?from=2026-12-08&to=2026-12-08", headers=AUTH).get_json()
    assert [(b["id"], b["lead"], b["start"], b["end"], b["status"], b["tier"], b["a_count"]) for b in api] == [
        (booking.id, f"line:{user.user_id}", "2026-12-08T10:00:00+09:00", "2026-12-08T10:30:00+09:00", "booked",
         None, None)]
    # ... the bookings page ...
    browser = login(desk)
    page = browser.get("/console/bookings").get_data(as_text=True)
    assert booking_rows(page) == [(booking.id, "booked")] and SHOP in page
    # ... and the calendar feed: one event, its stable UID, the shop's name, the details
    [event] = feed(desk)
    assert str(event["uid"]) == f"{booking.id}@crmbot"
    assert str(event["summary"]) == f"{SHOP}様 ご相談"
    assert str(event["status"]) == "CONFIRMED"
    assert event.decoded("dtstart").timestamp() == TUE_10
    assert "オンライン（Zoom）" in str(event["description"])

    # the day before, at the reminder hour: one reminder, whatever the number of passes
    pushes = len(env.fake.recorded(PUSH))
    remind(desk, redis_url, "2026-12-07T17:59+09:00")
    assert len(env.fake.recorded(PUSH)) == pushes
    remind(desk, redis_url, "2026-12-07T18:00+09:00")
    remind(desk, redis_url, "2026-12-07T18:05+09:00")
    [push] = env.fake.recorded(PUSH)[pushes:]
    assert push.json["to"] == user.user_id and push.headers.get("x-line-retry-key")
    [reminder] = push.json["messages"]
    assert reminder["altText"].startswith(script.text("booking_remind_day"))
    assert "12月8日（火）10:00〜10:30" in reminder["altText"]

    # a person replies in the thread: on LINE once, though Slack redelivers it, and the user's messages are marked
    # read (相談する, answered by the bot itself, included); the user's answer comes back into the thread
    words = "ご予約ありがとうございます。当日はZoomのURLをこちらでお送りします。"
    event_, event_id = desk.reply(words)
    desk.slack_post(event_body(event_, event_id=event_id), retry_num=1)
    assert [p.json["messages"] for p in desk.pushes(user)[1:]] == [[{"type": "text", "text": words}]]
    assert env.fake.delivered(user.user_id)[-1]["text"] == words
    assert env.fake.marked_read == ["tok-consult"]
    answer = "Zoomは初めてですが、よろしくお願いします。"
    assert said_after(desk, user, lambda: user.send(text(user, answer, "tok-answer"))) == []  # left to the person
    assert owner_lines(desk.thread()[-1]) == ["💬 LINEでのメッセージ", answer]

    # the consultancy cancels from the console, with a message: the feed, the thread and the user are told
    res = browser.post(f"/console/bookings/{booking.id}/cancel",
                       data={"csrf_token": csrf(browser, "/console/bookings"), "message": "担当者の都合のため",
                             "next": "/console/bookings"})
    assert res.status_code == 302
    desk.settle()
    [event] = feed(desk)
    assert str(event["uid"]) == f"{booking.id}@crmbot" and str(event["status"]) == "CANCELLED"
    assert thread_texts(desk)[-1].startswith("✖️ 予約が取り消されました：2026-12-08 10:00–10:30")
    [told] = desk.pushes(user)[2:]
    assert told.json["messages"][0]["altText"].startswith(script.text("booking_cancelled_op"))
    assert "担当者より：担当者の都合のため" in told.json["messages"][0]["altText"]
    assert len(env.fake.recorded(MARK_AS_READ)) == 1


# ---- the funnel's consultations, for scripted users -----------------------------------------------------------


def redelivered(event: dict[str, Any]) -> dict[str, Any]:
    """The same webhook event, as LINE sends it again (the same webhookEventId)."""
    return dict(event, deliveryContext={"isRedelivery": True})


def consult(desk: Desk, user: LineUser) -> list[dict[str, Any]]:
    """相談する, and LINE delivering it a second time; the free slots' postbacks."""
    ev = user.text_event("相談する")
    asked = said_after(desk, user, lambda: user.send(ev))
    assert said_after(desk, user, lambda: user.send(redelivered(ev))) == []
    return postbacks(carousel(asked))


def double_tap(desk: Desk, user: LineUser, data: str) -> dict[str, Any]:
    """A button tapped, LINE redelivering the tap, and the button tapped again (another event)."""
    ev = user.postback_event(data)
    [first] = said_after(desk, user, lambda: user.send(ev))
    assert said_after(desk, user, lambda: user.send(redelivered(ev))) == []
    said_after(desk, user, lambda: user.tap(data))
    return first


def active_booking(desk: Desk, user: LineUser) -> str:
    bookings = desk.env.svc.bookings
    assert bookings is not None
    [found] = [b.id for b in bookings.bookings_of(Subject(Transport.LINE, user.user_id)) if b.active]
    return found


def test_the_funnel_counts_each_scripted_user_once(desk: Desk) -> None:
    env, http = desk.env, desk.env.http
    assert http.put("/console/api/availability", json=AVAILABILITY, headers=AUTH).status_code == 200
    asked, booked, cancelled, rebooked, moved, came, missed = (env.user() for _ in range(7))
    for user in (asked, booked, cancelled, rebooked, moved, came, missed):
        user.follow()
    consult(desk, asked)
    said_after(desk, asked, lambda: asked.say("相談したい"))  # asked again in other words: the same request

    double_tap(desk, booked, consult(desk, booked)[0]["data"])

    card = double_tap(desk, cancelled, consult(desk, cancelled)[0]["data"])
    double_tap(desk, cancelled, postbacks(card)[1]["data"])  # キャンセルする, twice

    card = double_tap(desk, rebooked, consult(desk, rebooked)[0]["data"])
    double_tap(desk, rebooked, postbacks(card)[1]["data"])
    slots = said_after(desk, rebooked, lambda: rebooked.say("予約"))  # typed: the free slots again
    double_tap(desk, rebooked, postbacks(carousel(slots))[0]["data"])

    card = double_tap(desk, moved, consult(desk, moved)[0]["data"])
    moving = said_after(desk, moved, lambda: moved.tap(postbacks(card)[0]["data"]))  # 変更する
    double_tap(desk, moved, postbacks(carousel(moving))[-2]["data"])  # a later slot

    for user in (came, missed):
        double_tap(desk, user, consult(desk, user)[0]["data"])
    first, second = active_booking(desk, came), active_booking(desk, missed)

    desk.clock.t = jst("2026-12-24T09:00")  # every slot offered has passed: the consultancy marks who came
    browser = login(desk)
    for booking_id, status in ((first, "attended"), (second, "no_show"), (second, "no_show")):
        res = browser.post(f"/console/bookings/{booking_id}/mark",
                           data={"status": status, "csrf_token": csrf(browser, "/console/bookings?when=past"),
                                 "next": "/console/bookings?when=past"})
        assert res.status_code == 302
    desk.settle()

    bookings = env.svc.bookings
    assert bookings is not None
    for user in (booked, rebooked, moved):  # one booking each, however often they tapped
        assert len([b for b in bookings.bookings_of(Subject(Transport.LINE, user.user_id)) if b.active]) == 1
    expected = {"requested": 1, "booked": 3, "attended": 1, "no_show": 1, "cancelled": 1}
    assert http.get("/console/api/funnel", headers=AUTH).get_json()["consultations"] == expected
    assert http.get("/console/api/funnel?channel=line&from=2026-12-07&to=2026-12-07",
                    headers=AUTH).get_json()["consultations"] == expected
    nothing = dict.fromkeys(expected, 0)
    assert http.get("/console/api/funnel?channel=slack", headers=AUTH).get_json()["consultations"] == nothing
    assert http.get("/console/api/funnel?from=2026-12-08", headers=AUTH).get_json()["consultations"] == nothing
    assert len([m for m in desk.slack.messages(OPS) if "thread_ts" not in m]) == 7  # one brief a person
