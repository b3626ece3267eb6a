"""Channel-neutral wording of the consultation outputs (terminal, web and notifications use it as is)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot import views
from conversations.content import load_script
from conversations.outputs import ConsultAck, Result
from tests.conversations.test_content import load, real_data, refused, write

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

JA = load_script("ja")


def test_the_result_offers_a_consultation_before_the_retake() -> None:
    consult, retake = views.buttons_for(JA, Result(sid=4, answers="A" * 10))
    assert (consult.label, consult.data, retake.data) == ("相談する", "k:4", "s")


def test_the_confirmation_as_text() -> None:
    assert views.plain_text(JA, ConsultAck(sid=1)) == JA.text("consult_ack")
    assert views.plain_text(JA, ConsultAck(sid=1, again=True)) == JA.text("consult_again")
    with_page = views.plain_text(JA, ConsultAck(sid=1, url="https://example.com/b"))
    assert with_page == "\n".join([JA.text("consult_ack"), JA.text("consult_booking"), "https://example.com/b"])
    assert views.buttons_for(JA, ConsultAck(sid=1)) == []


def test_the_confirmation_says_what_the_operator_set_and_leaves_out_the_rest(tmp_path: Path) -> None:
    data = real_data()
    data["consult"] = {"firm": "株式会社テスト", "timeframe": "2営業日以内", "format": "",
                       "length": "30分ほど", "price": "初回は無料です"}
    write(tmp_path, data)
    script = load(tmp_path)
    assert dict(script.consult) == {"firm": "株式会社テスト", "timeframe": "2営業日以内", "length": "30分ほど",
                                    "price": "初回は無料です"}
    text = views.plain_text(script, ConsultAck(sid=1))
    assert text.split("\n")[-4:] == [script.text("consult_firm", value="株式会社テスト"),
                                     script.text("consult_timeframe", value="2営業日以内"),
                                     script.text("consult_length", value="30分ほど"),
                                     script.text("consult_price", value="初回は無料です")]
    assert "形式" not in text  # the format was left empty: unsaid
    assert views.plain_text(JA, ConsultAck(sid=1)) == JA.text("consult_ack")  # nothing set: the plain thanks


@pytest.mark.parametrize(("consult", "field"), [({"fee": "x"}, "consult.fee"), ({"price": 3}, "consult.price"),
                                                ({"firm": "x" * 81}, "consult.firm")])
def test_the_consultation_settings_are_checked(tmp_path: Path, consult: dict[str, Any], field: str) -> None:
    data = real_data()
    data["consult"] = consult
    write(tmp_path, data)
    refused(tmp_path, field)


# 2026-12-08 (Tuesday) 14:00-14:30 in Tokyo
START, END = 1796706000, 1796707800


def test_a_booking_names_its_date_japanese_style_and_offers_change_and_cancel() -> None:
    from conversations.outputs import BookingNote

    note = BookingNote("booked", "0123456789abcdef", START, END, "Asia/Tokyo", "オンライン（Zoom）")
    assert views.booking_when(JA, START, END, "Asia/Tokyo") == "12月8日（火）14:00〜14:30"
    assert views.plain_text(JA, note).splitlines() == [
        JA.text("booking_booked"), "日時：12月8日（火）14:00〜14:30", "形式：オンライン（Zoom）",
        JA.text("booking_change_note")]
    assert [(b.label, b.data) for b in views.buttons_for(JA, note)] == [
        ("変更する", "bk:0:0123456789abcdef"), ("キャンセルする", "bx:0123456789abcdef")]
    gone = BookingNote("cancelled", "0123456789abcdef", START, END, "Asia/Tokyo", "電話")
    assert [b.data for b in views.buttons_for(JA, gone)] == ["bk"]
    en = load_script("en")
    assert views.booking_when(en, START, END, "Asia/Tokyo") == "Tue 12/8, 14:00-14:30"
    assert views.booking_when(en, START, END, "UTC") == "Tue 12/8, 05:00-05:30"


def test_slots_are_buttons_with_a_page_further() -> None:
    from conversations.outputs import Slots

    slots = Slots(((START, END),), "Asia/Tokyo", "電話", more=START)
    assert [(b.label, b.data) for b in views.buttons_for(JA, slots)] == [
        ("12/8（火）14:00", f"bp:{START}"), (JA.text("booking_more_button"), f"bk:{START}")]
    assert views.plain_text(JA, slots) == JA.text("booking_slots")
    none = Slots((), "Asia/Tokyo", note="none")
    assert views.plain_text(JA, none) == JA.text("booking_none") and views.buttons_for(JA, none) == []
    assert views.plain_text(JA, ConsultAck(sid=0)) == JA.text("consult_ack") + "\n" + JA.text("consult_first")


def test_the_try_page_the_terminal_and_slack_render_the_booking_outputs_simply() -> None:
    from bot import webchat
    from bot.cli import terminal_text
    from bot.slack.blocks import diagnosis_message
    from conversations.outputs import BookingNote, Slots

    slots = Slots(((START, END),), "Asia/Tokyo", "電話", more=START)
    note = BookingNote("remind_day", "0123456789abcdef", START, END, "Asia/Tokyo", "電話")
    page = webchat.render(JA, [slots, note])
    assert [m["kind"] for m in page] == ["slots", "booking"]
    assert [b["data"] for b in page[0]["buttons"]] == [f"bp:{START}", f"bk:{START}"]
    assert page[1]["text"].startswith(JA.text("booking_remind_day"))
    assert terminal_text(JA, note) == views.plain_text(JA, note)
    text, blocks = diagnosis_message(JA, [slots, note])
    assert JA.text("booking_slots") in text and "12月8日（火）14:00〜14:30" in text
    assert [e["value"] for b in blocks if b["type"] == "actions" for e in b["elements"]] == [
        f"bp:{START}", f"bk:{START}", "bk:0:0123456789abcdef", "bx:0123456789abcdef"]
