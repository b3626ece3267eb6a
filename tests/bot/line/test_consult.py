"""Consultation on LINE end to end: 「相談する」 on the result -> the request recorded -> the user's
confirmation (with the booking page as a URI button when one is set) -> free text left to a person for
the handoff window, while the diagnosis words and buttons still work."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import build_services, create_app
from conversations import keys
from conversations.keys import Subject
from conversations.machine import Conv
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser, last_quick_reply_data
from tests.bot.line.test_webhook import take
from tests.fakes.line_api import PUSH, REPLY

HOUR = 3600.0
BOOKING = "https://booking.example.com/crm?from=line"


def conv_of(env: LineEnv, user: LineUser) -> Conv:
    return Conv.from_json(env.r.get(keys.conv(Subject("line", user.user_id))))


def footer_actions(result: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["action"] for c in result["contents"]["footer"]["contents"]]


def sent(env: LineEnv) -> int:
    """Messages the bot has sent so far (every send goes through the fake)."""
    return len([r for r in env.fake.recorded() if r.path in (REPLY, PUSH)])


def finished_user(env: LineEnv, answers: str = "AABACAADAB") -> tuple[LineUser, dict[str, Any]]:
    user = env.user()
    delivered = take(env, user, answers)
    return user, delivered[-2]  # the result, then the first qualification question


@pytest.fixture
def booking_env(r: Any, redis_url: str, fake_line: Any, clock: Any) -> Iterator[LineEnv]:
    config = line_config(redis_url, fake_line, consult_url=BOOKING)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    yield LineEnv(svc, create_app(services=svc).test_client(), fake_line, clock, r, worker)
    worker.close()


def test_the_result_card_offers_a_consultation(line_env: LineEnv) -> None:
    _, result = finished_user(line_env)
    script = line_env.svc.script
    consult, retake = footer_actions(result)
    assert consult == {"type": "postback", "label": "相談する", "data": "k:1", "displayText": "相談する"}
    assert consult["label"] == script.text("consult_button")
    assert retake["data"] == "s" and retake["label"] == script.text("retake_button")


def test_tapping_consult_confirms_and_opens_the_handoff(line_env: LineEnv) -> None:
    user, result = finished_user(line_env)
    before = len(line_env.fake.delivered(user.user_id))
    user.tap(footer_actions(result)[0]["data"])
    assert line_env.settle() == 1
    [confirmation] = line_env.fake.delivered(user.user_id)[before:]
    assert confirmation == {"type": "text", "text": line_env.svc.script.text("consult_ack")}
    conv = conv_of(line_env, user)
    assert (conv.consulted, conv.handoff_until) == (1, line_env.clock() + 24 * HOUR)


def test_free_text_is_left_to_a_person_until_the_handoff_ends(line_env: LineEnv) -> None:
    user, result = finished_user(line_env)
    user.tap(footer_actions(result)[0]["data"])
    line_env.settle()
    quiet_from = sent(line_env)
    for text in ("よろしくお願いします", "来週の火曜日はいかがでしょうか"):
        user.say(text)
        line_env.clock.advance(11 * HOUR)
    user.send(user.event("message", message={"type": "sticker", "id": "1", "quoteToken": "q", "stickerResourceType":
                                             "STATIC", "packageId": "446", "stickerId": "1988"}))
    assert line_env.settle() == 0 and sent(line_env) == quiet_from  # nothing said, nothing queued
    line_env.clock.advance(2 * HOUR)  # 24 h after the request: the bot answers again
    user.say("こんにちは")
    line_env.settle()
    assert line_env.fake.delivered(user.user_id)[-1]["text"] == line_env.svc.script.text("heard")


def test_diagnosis_words_and_buttons_still_work_during_the_handoff(line_env: LineEnv) -> None:
    user, result = finished_user(line_env)
    user.tap(footer_actions(result)[0]["data"])
    line_env.settle()
    user.say("停止")
    line_env.settle()
    assert line_env.fake.delivered(user.user_id)[-1]["text"] == line_env.svc.script.text("optin_off")
    user.say("診断")
    line_env.settle()
    question = line_env.fake.delivered(user.user_id)[-1]
    assert question["text"].startswith("Q1/10")
    user.tap(last_quick_reply_data([question])[1])  # B on Q1 of diagnosis 2
    line_env.settle()
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q2/10")
    before = sent(line_env)
    user.say("途中ですが質問です")  # free text mid-diagnosis: still the person's
    assert line_env.settle() == 0 and sent(line_env) == before
    user.say("相談")  # the consult word is a diagnosis word: confirmed (again)
    line_env.settle()
    confirmed, again = line_env.fake.delivered(user.user_id)[-2:]
    assert confirmed["text"] == line_env.svc.script.text("consult_ack")
    assert again["text"].startswith("Q2/10")  # and the open question again, to carry on
    assert conv_of(line_env, user).consulted == 2  # typed mid-diagnosis: about the one under way


def test_a_double_tap_is_confirmed_once_and_a_later_tap_again(line_env: LineEnv) -> None:
    user, result = finished_user(line_env)
    data = footer_actions(result)[0]["data"]
    user.tap(data)
    user.tap(data)
    assert line_env.settle() == 1
    line_env.clock.advance(60)
    user.tap(data)
    line_env.settle()
    again = line_env.fake.delivered(user.user_id)[-1]
    assert again["text"] == line_env.svc.script.text("consult_again")


def test_with_a_booking_page_the_confirmation_opens_it(booking_env: LineEnv) -> None:
    user, result = finished_user(booking_env)
    assert footer_actions(result)[0]["type"] == "postback"  # the tap itself must reach us to be recorded
    user.tap(footer_actions(result)[0]["data"])
    booking_env.settle()
    confirmation = booking_env.fake.delivered(user.user_id)[-1]
    script = booking_env.svc.script
    assert confirmation["type"] == "flex"
    assert confirmation["altText"] == script.text("consult_ack") + "\n" + script.text("consult_booking")
    [button] = footer_actions(confirmation)
    assert button == {"type": "uri", "label": script.text("consult_book_button"), "uri": BOOKING}
    assert script.text("consult_booking") in json.dumps(confirmation["contents"], ensure_ascii=False)
    assert conv_of(booking_env, user).consulted == 1


def test_consult_before_any_diagnosis_is_taken_and_offers_the_diagnosis_as_preparation(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("相談したい")
    line_env.settle()
    script = line_env.svc.script
    first, offer = line_env.fake.delivered(user.user_id)
    assert first["text"] == script.text("consult_ack") + "\n" + script.text("consult_first")
    assert last_quick_reply_data([offer]) == ["s"]  # optional: never a gate
    conv = conv_of(line_env, user)
    assert conv.sid == 0 and conv.handoff_until == line_env.clock() + 24 * HOUR
    consultation = line_env.svc.bookings.consultation(Subject("line", user.user_id))
    assert consultation is not None and consultation.status == "requested"
