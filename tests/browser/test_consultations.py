"""The console's consultation pages in a real browser: the availability editor (ranges edited and saved, the
next free slots change with them, a bad value shows the error naming its field and changes nothing) and
the bookings page (upcoming and past, a date filter, a status filter, mark attended, cancel with a
message to the owner: the app's booking-news hook hears each change once).

The app runs in this process, served over real HTTP by crmbot's own web server (bot.web.WebServer) on
the suite's Redis (a database of its own), so that its clock is injected (the slots offered depend on
the day) and its booking-news hook is a recorder: the hooks that tell the owner on LINE and the
operator in Slack are tested with their own parts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import redis

from bot.app import build_services, create_app
from bot.booking_news import BookingNews
from bot.config import Config
from bot.web import WebServer
from conversations.analytics import Analytics
from conversations.booking import Booked, Bookings
from conversations.keys import Subject
from conversations.transports import Transport
from tests.browser.conftest import CONSOLE_PASSWORD, log_in, screenshot, until
from tests.conftest import FakeClock

DB = 10  # the suite's Redis, a database no other test uses (conftest's crmbot serve has 9)
JST = ZoneInfo("Asia/Tokyo")
WEEKDAYS = {d: [["10:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


def jst(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=JST)


@dataclass
class App:
    base: str
    redis: redis.Redis
    clock: FakeClock
    news: list[BookingNews] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.base + path

    def store(self, clock: FakeClock | None = None) -> Bookings:
        return Bookings(self.redis, clock=clock or self.clock)


@pytest.fixture(scope="module")
def app(chromium: tuple[str, str], redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    url = redis_url.rsplit("/", 1)[0] + f"/{DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    clock = FakeClock(jst("2026-01-01T09:00").timestamp())
    config = Config(redis_url=url, console_password=CONSOLE_PASSWORD, secret_key="k" * 40,
                    data_dir=tmp_path_factory.mktemp("consultations"))
    svc = build_services(config, clock=clock)
    served = App("", client, clock)
    svc.booking_news = served.news.append
    server = WebServer(create_app(services=svc), "127.0.0.1", 0, threads=4)
    host, port = server.addresses[0]
    served.base = f"http://{host}:{port}"
    thread = threading.Thread(target=server.run, name="consultations-web", daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.stop()
        thread.join(timeout=30)
        client.flushdb()
        client.close()
    assert not thread.is_alive()


@pytest.fixture
def console(browser: Any, app: App) -> Any:
    browser.get(app.url("/console/static/console.css"))
    browser.delete_all_cookies()
    log_in(browser, app)  # type: ignore[arg-type]  # log_in needs only url()
    until(browser, lambda b: b.current_url.rstrip("/").endswith("/console"), "the overview after the login")
    return browser


def by_id(browser: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.ID, name)


def fill(browser: Any, name: str, value: str) -> None:
    box = by_id(browser, name)
    box.clear()
    box.send_keys(value)


def preview(browser: Any) -> list[str]:
    from selenium.webdriver.common.by import By

    return [li.get_attribute("data-start") for li in browser.find_elements(By.CSS_SELECTOR, "#preview-slots li")]


def save(browser: Any) -> None:
    from selenium.webdriver.support import expected_conditions

    old = by_id(browser, "availability-form")
    by_id(browser, "availability-save").click()
    until(browser, expected_conditions.staleness_of(old), "the page after saving")
    until(browser, lambda b: b.find_elements("id", "availability-form"), "the editor again")


def test_the_availability_editor(console: Any, app: App, tmp_path: Path) -> None:
    app.clock.t = jst("2026-01-01T09:00").timestamp()  # a Thursday (a holiday); Monday the 12th is one too
    by_id(console, "nav-availability").click()
    until(console, lambda b: b.find_elements("id", "availability-unsaved"), "the editor, nothing saved yet")
    assert "日本の祝日" in by_id(console, "holiday-note").text
    assert by_id(console, "availability-timezone").text == "Asia/Tokyo"
    assert by_id(console, "preview-none").is_displayed()
    fill(console, "weekly-mon", "10:00-11:00, 13:00-14:00")
    for day in ("tue", "thu", "fri"):
        by_id(console, f"weekly-{day}").clear()
    fill(console, "weekly-wed", "10:00-11:00")
    fill(console, "slot-minutes", "60")
    fill(console, "capacity", "2")
    fill(console, "closed-dates", "2026-01-07")
    fill(console, "format", "電話")
    save(console)
    assert "保存しました" in console.find_element("css selector", "p.notice.ok").text
    assert preview(console) == ["2026-01-05T10:00:00+09:00", "2026-01-05T13:00:00+09:00",
                                "2026-01-14T10:00:00+09:00"]
    assert "残り2枠" in by_id(console, "preview-slots").text
    # a third range on Mondays: the next free slots follow
    fill(console, "weekly-mon", "10:00-11:00, 13:00-14:00, 15:00〜16:00")
    save(console)
    assert preview(console) == ["2026-01-05T10:00:00+09:00", "2026-01-05T13:00:00+09:00",
                                "2026-01-05T15:00:00+09:00", "2026-01-14T10:00:00+09:00"]
    saved = app.store().availability()
    assert saved is not None and saved.to_json()["weekly"] == {
        "mon": [["10:00", "11:00"], ["13:00", "14:00"], ["15:00", "16:00"]], "wed": [["10:00", "11:00"]]}
    # an overlapping range: the error names it, the field is marked, nothing changes
    fill(console, "weekly-wed", "10:00-11:00, 10:30-12:00")
    save(console)
    error = by_id(console, "availability-error")
    assert error.get_attribute("data-field") == "weekly.wed[1]"
    assert "「水曜日の2つ目の時間帯」を確認してください。" in error.text
    assert by_id(console, "weekly-wed").get_attribute("aria-invalid") == "true"
    assert by_id(console, "weekly-wed").get_attribute("value") == "10:00-11:00, 10:30-12:00"  # kept to correct
    assert app.store().availability() == saved
    assert len(preview(console)) == 4
    console.set_window_size(1280, 1900)
    try:
        screenshot(console, "console-availability.png", tmp_path)
    finally:
        console.set_window_size(420, 860)


def rows(browser: Any) -> dict[str, str]:
    from selenium.webdriver.common.by import By

    return {r.get_attribute("data-booking"): r.get_attribute("data-status")
            for r in browser.find_elements(By.CSS_SELECTOR, "#bookings-table tr.booking-row")}


def test_the_bookings_page(console: Any, app: App, tmp_path: Path) -> None:
    from selenium.webdriver.support.ui import Select

    then = FakeClock(jst("2026-01-01T09:00").timestamp())
    store = app.store(then)
    store.set_availability({"timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 2, "min_notice_hours": 0,
                            "horizon_days": 30, "weekly": WEEKDAYS, "closed_dates": [], "reminder_hour": 18,
                            "format": "オンライン（Zoom）"})
    names = Analytics(app.redis)
    made = {}
    for key, when, name in (("done", "2026-01-05T10:00", "青葉商店"), ("gone", "2026-01-05T10:00", "北斗オンライン"),
                            ("soon", "2026-01-05T11:00", "テスト通販"), ("next", "2026-01-06T10:00", "みなと雑貨"),
                            ("later", "2026-01-08T11:30", "さくら茶舗")):
        person = Subject(Transport.LINE, "U" + key[0] * 28 + "0000")
        names.set_name("line", person.user_id, name)
        done = store.book(person, jst(when), f"ev-{key}")
        assert isinstance(done, Booked)
        made[key] = done.booking.id
    store.cancel(made["gone"], by="owner")
    app.clock.t = jst("2026-01-05T10:45").timestamp()  # days on: the session has ended, log in again
    app.news.clear()
    log_in(console, app)  # type: ignore[arg-type]
    until(console, lambda b: b.find_elements("id", "nav-bookings"), "the console after the login")

    by_id(console, "nav-bookings").click()
    until(console, lambda b: b.find_elements("id", "bookings-table"), "the bookings page")
    assert rows(console) == {made["soon"]: "booked", made["next"]: "booked", made["later"]: "booked"}  # from now
    # dates: the 6th only
    for name in ("filter-from", "filter-to"):
        console.execute_script("arguments[0].value = '2026-01-06'", by_id(console, name))  # a date input's value
    by_id(console, "filter-apply").click()
    until(console, lambda b: rows(b) == {made["next"]: "booked"}, "the bookings of the 6th")
    # the past, cancelled ones only
    by_id(console, "tab-past").click()
    until(console, lambda b: rows(b) == {made["done"]: "booked", made["gone"]: "cancelled"}, "the past bookings")
    Select(by_id(console, "filter-status")).select_by_value("cancelled")
    by_id(console, "filter-apply").click()
    until(console, lambda b: rows(b) == {made["gone"]: "cancelled"}, "the cancelled ones")
    Select(by_id(console, "filter-status")).select_by_value("")
    by_id(console, "filter-apply").click()
    # mark attended
    until(console, lambda b: b.find_elements("id", f"attended-{made['done']}"), "the attended button")[0].click()
    until(console, lambda b: rows(b).get(made["done"]) == "attended", "the booking marked attended")
    assert "参加済みにしました" in console.find_element("css selector", "p.notice.ok").text
    [heard] = app.news
    assert (heard.kind, heard.booking.id if heard.booking else None, heard.by) == ("attended", made["done"], "console")
    # cancel with a message to the owner
    by_id(console, "tab-upcoming").click()
    until(console, lambda b: b.find_elements("id", f"cancel-open-{made['soon']}"), "the upcoming bookings")[0].click()
    by_id(console, f"cancel-message-{made['soon']}").send_keys("担当者の都合により、別の日時でご相談させてください。")
    by_id(console, f"cancel-{made['soon']}").click()
    until(console, lambda b: rows(b).get(made["soon"]) == "cancelled", "the booking cancelled")
    assert len(app.news) == 2
    cancelled = app.news[1]
    assert cancelled.kind == "cancelled" and cancelled.message == "担当者の都合により、別の日時でご相談させてください。"
    assert cancelled.lead == Subject(Transport.LINE, "U" + "s" * 28 + "0000")
    assert app.store().booking(made["soon"]).status == "cancelled"  # type: ignore[union-attr]
    console.set_window_size(1280, 720)
    try:
        screenshot(console, "console-bookings.png", tmp_path)
    finally:
        console.set_window_size(420, 860)
