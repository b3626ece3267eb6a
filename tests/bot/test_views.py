"""Channel-neutral wording of the consultation outputs (terminal, web and notifications use it as is)."""

from __future__ import annotations

import pytest

from bot import views
from conversations.content import load_script
from conversations.outputs import ConsultAck, Result

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
