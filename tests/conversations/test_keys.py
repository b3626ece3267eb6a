"""Tests for conversations.keys: key formats, Subject validation and the outbox reference."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations import keys
from conversations.errors import InvalidInput
from conversations.keys import Subject

ALICE = Subject("line", "U0123456789abcdef")

# Identifier characters a Subject accepts: anything printable except braces, colon and whitespace.
ident = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, blacklist_characters="{}:"),
    min_size=1,
    max_size=128,
)


def test_key_formats() -> None:
    assert ALICE.tag == "{u:line:U0123456789abcdef}"
    assert keys.conv(ALICE) == "crmbot:{u:line:U0123456789abcdef}:conv"
    assert keys.seen(ALICE, "01HXYZ") == "crmbot:{u:line:U0123456789abcdef}:seen:01HXYZ"
    assert keys.outbox(ALICE) == "crmbot:{u:line:U0123456789abcdef}:out"
    assert keys.OUTBOX_DUE == "crmbot:{outbox}:due"
    assert keys.OUTBOX_PARKED == "crmbot:{outbox}:parked"


def test_keys_of_different_channels_differ() -> None:
    assert keys.conv(Subject("line", "U1")) != keys.conv(Subject("slack", "U1"))
    assert keys.outbox(Subject("line", "U1")) != keys.outbox(Subject("line", "U2"))


@pytest.mark.parametrize(
    "bad",
    ["", "a{b", "a}b", "{u}", "a:b", "a b", " ", "a\tb", "a\nb", "a\rb", "x" * 129],
    ids=["empty", "open-brace", "close-brace", "braces", "colon", "space", "only-space", "tab", "lf", "cr", "129"],
)
@pytest.mark.parametrize("field", ["channel", "user_id"])
def test_subject_rejects_bad_identifiers(field: str, bad: str) -> None:
    args = {"channel": "line", "user_id": "U1", field: bad}
    with pytest.raises(InvalidInput, match=field):
        Subject(**args)


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Subject("line", "")


def test_subject_accepts_the_longest_allowed_identifier() -> None:
    s = Subject("c" * 128, "u" * 128)
    assert keys.conv(s) == f"crmbot:{{u:{'c' * 128}:{'u' * 128}}}:conv"


def test_outbox_ref_format() -> None:
    assert keys.outbox_ref(ALICE, "m-1") == "line:m-1:U0123456789abcdef"


def test_parse_outbox_ref_of_a_uuid_message() -> None:
    ref = keys.outbox_ref(ALICE, "3f2a6c1e-8d4b-4f5e-9a7b-0c1d2e3f4a5b")
    assert keys.parse_outbox_ref(ref) == (ALICE, "3f2a6c1e-8d4b-4f5e-9a7b-0c1d2e3f4a5b")


@given(channel=ident, user_id=ident, message_id=ident)
def test_outbox_ref_round_trips(channel: str, user_id: str, message_id: str) -> None:
    subject = Subject(channel, user_id)
    assert keys.parse_outbox_ref(keys.outbox_ref(subject, message_id)) == (subject, message_id)
