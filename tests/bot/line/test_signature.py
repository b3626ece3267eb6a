"""X-Line-Signature that is not a signature at all: always 400 (never 500), nothing stored or sent."""

from __future__ import annotations

import json

import pytest

from bot.line.events import signature_ok
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import SECRET, sign

GARBAGE = [
    "ü",
    "Ã¼",  # UTF-8 "ü" read as Latin-1, as a WSGI server hands raw header bytes over
    "%%%",
    "A" * 10_000,
    "",
    " ",
    "bm90IGEgc2lnbmF0dXJl=",  # bad padding
    "====",
    "\x00",
    "\u2028",
    "\ud800",  # a lone surrogate
]


@pytest.mark.parametrize("signature", GARBAGE)
def test_malformed_signature_is_400_and_changes_nothing(line_env: LineEnv, signature: str) -> None:
    user = line_env.user()
    body = json.dumps({"destination": "x", "events": [user.text_event("診断")]}).encode()
    res = line_env.http.post("/line/webhook", data=body,
                             headers={"Content-Type": "application/json", "X-Line-Signature": signature})
    assert res.status_code == 400
    assert line_env.r.dbsize() == 0 and line_env.fake.recorded() == []


@pytest.mark.parametrize("signature", GARBAGE)
def test_signature_ok_is_false_for_garbage_and_never_raises(signature: str) -> None:
    assert signature_ok(SECRET, b"{}", signature) is False


def test_signature_ok_accepts_the_real_one_with_surrounding_space() -> None:
    assert signature_ok(SECRET, b"{}", sign(b"{}")) is True
    assert signature_ok(SECRET, b"{}", f" {sign(b'{}')}\t") is True
    assert signature_ok(SECRET, b"{}", sign(b"{} ")) is False
