"""bot.calendar_feed: bookings to RFC 5545 bytes, read back with the icalendar library: one VEVENT per
booking with a stable UID, times in UTC, the shop's name in SUMMARY, the lead's figures in DESCRIPTION,
STATUS and SEQUENCE following the booking, the same bytes for the same bookings, and text from outside
(a name with commas, semicolons, line breaks) escaped, never breaking the file."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest

from bot.calendar_feed import FeedWords, LeadCard, feed
from bot.console.texts import FEED_TEXTS
from conversations.booking import Booking

pytestmark = pytest.mark.fast

JST = ZoneInfo("Asia/Tokyo")
WORDS = FeedWords(calendar="相談予約", summary="{name}様 ご相談", unknown_name="お名前未取得", format="形式: {format}",
                  tier="評価: {tier}", a_count="Aの数: {count}/10", point="次に整えたい一点: {point}", answers="回答:",
                  outcome={"attended": "結果: ご相談済み", "no_show": "結果: ご欠席"})
CREATED = datetime(2027, 1, 3, 22, 30, tzinfo=JST).timestamp()


def booking(i: str, start: str, status: str = "booked", seq: int = 0, lead: str = "line:Ua") -> Booking:
    begins = datetime.fromisoformat(start).replace(tzinfo=JST)
    return Booking(id=i * 16, lead=lead, start=begins.astimezone(UTC),
                   end=(begins.replace(minute=begins.minute + 30)).astimezone(UTC), status=status, seq=seq,
                   created=CREATED, updated=CREATED + 60 * seq, format="オンライン（Zoom）")


CARD = LeadCard(name="テスト通販", tier="B評価", a_count=7, point="Q3 2回目購入",
                answers=(("Q1 年間LTV", "A"), ("Q2 継続期間", "B")), url="https://crm.example/console/people/line/Ua")


def events(data: bytes) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(data)
    return {str(e["uid"]): e for e in cal.walk("VEVENT")}


def test_one_event_per_booking_with_what_the_operator_needs() -> None:
    data = feed([booking("b", "2027-01-07T10:00"), booking("a", "2027-01-06T10:00")], {"line:Ua": CARD}, WORDS)
    got = events(data)
    assert list(got) == ["a" * 16 + "@crmbot", "b" * 16 + "@crmbot"]  # by start
    e = got["a" * 16 + "@crmbot"]
    assert e.decoded("dtstart") == datetime(2027, 1, 6, 1, 0, tzinfo=UTC)
    assert e.decoded("dtend") == datetime(2027, 1, 6, 1, 30, tzinfo=UTC)
    assert b"DTSTART:20270106T010000Z\r\n" in data
    assert str(e["summary"]) == "テスト通販様 ご相談"
    assert str(e["status"]) == "CONFIRMED" and int(e["sequence"]) == 0
    assert e.decoded("dtstamp") == datetime.fromtimestamp(CREATED, UTC)
    assert str(e["description"]).split("\n") == [
        "形式: オンライン（Zoom）", "評価: B評価", "Aの数: 7/10", "次に整えたい一点: Q3 2回目購入", "回答:",
        "Q1 年間LTV: A", "Q2 継続期間: B", "https://crm.example/console/people/line/Ua"]
    assert str(e["url"]) == CARD.url
    cal = icalendar.Calendar.from_ical(data)
    assert (str(cal["version"]), str(cal["x-wr-calname"])) == ("2.0", "相談予約")
    assert "METHOD" not in cal


def test_uids_are_stable_and_a_change_or_cancel_updates_the_same_event() -> None:
    first = booking("a", "2027-01-06T10:00")
    assert feed([first], {}, WORDS) == feed([first], {}, WORDS)  # regenerated: the same bytes
    moved = replace(first, start=first.start.replace(hour=5), end=first.end.replace(hour=5), seq=1,
                    updated=first.updated + 60)
    cancelled = replace(moved, status="cancelled", seq=2, updated=moved.updated + 60)
    for version, status, seq in ((moved, "CONFIRMED", 1), (cancelled, "CANCELLED", 2)):
        [(uid, e)] = events(feed([version], {}, WORDS)).items()
        assert uid == first.id + "@crmbot"
        assert (str(e["status"]), int(e["sequence"])) == (status, seq)
        assert e.decoded("dtstart") == datetime(2027, 1, 6, 5, 0, tzinfo=UTC)
        assert e.decoded("dtstamp") == datetime.fromtimestamp(version.updated, UTC)
    assert str(events(feed([cancelled], {}, WORDS))[first.id + "@crmbot"]["transp"]) == "TRANSPARENT"


def test_an_unknown_lead_and_an_outcome() -> None:
    [e] = events(feed([booking("a", "2027-01-06T10:00", status="no_show", lead="line:Uz")], {}, WORDS)).values()
    assert str(e["summary"]) == "お名前未取得様 ご相談"
    assert str(e["description"]).split("\n") == ["形式: オンライン（Zoom）", "結果: ご欠席"]
    assert str(e["status"]) == "CONFIRMED"


def test_text_from_outside_is_escaped_and_lines_are_folded() -> None:
    hostile = LeadCard(name="A社, 本店; \\通販\r\nEND:VEVENT\nBEGIN:VEVENT", point="x" * 200,
                       answers=(("商材", "化粧品, 健康食品; その他"),))
    data = feed([booking("a", "2027-01-06T10:00")], {"line:Ua": hostile}, WORDS)
    [e] = events(data).values()
    assert str(e["summary"]) == "A社, 本店; \\通販 END:VEVENT BEGIN:VEVENT様 ご相談"  # one line
    assert "商材: 化粧品, 健康食品; その他" in str(e["description"])
    lines = data.split(b"\r\n")
    assert lines.count(b"BEGIN:VEVENT") == 1 and lines.count(b"END:VEVENT") == 1  # the text stays inside its line
    assert all(len(line) <= 75 for line in lines) and b"\n" not in b"".join(lines)


def test_both_languages_have_every_word() -> None:
    assert set(FEED_TEXTS["ja"]) == set(FEED_TEXTS["en"])
    for t in FEED_TEXTS.values():
        words = FeedWords(calendar=t["calendar"], summary=t["summary"], unknown_name=t["unknown_name"],
                          format=t["format"], tier=t["tier"], a_count=t["a_count"], point=t["point"],
                          answers=t["answers"], outcome={"attended": t["attended"], "no_show": t["no_show"]})
        assert events(feed([booking("a", "2027-01-06T10:00")], {"line:Ua": CARD}, words))
