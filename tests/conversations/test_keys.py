"""Tests for conversations.keys and conversations.jobs: key formats, Subject validation, job refs."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conversations import jobs, keys
from conversations.errors import InvalidInput
from conversations.keys import Subject

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

ALICE = Subject("line", "U0123456789abcdef")

# Identifier characters a Subject accepts: anything printable except braces, colon, bar and whitespace.
ident = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x2FFF, blacklist_characters="{}:|"),
    min_size=1,
    max_size=128,
)


def test_key_formats() -> None:
    assert ALICE.tag == "{u:line:U0123456789abcdef}"
    assert keys.conv(ALICE) == "crmbot:{u:line:U0123456789abcdef}:conv"
    assert keys.seen(ALICE, "01HXYZ") == "crmbot:{u:line:U0123456789abcdef}:seen:01HXYZ"
    assert jobs.mailbox(ALICE.tag_name) == "crmbot:{u:line:U0123456789abcdef}:out"
    assert jobs.leases(ALICE.tag_name) == "crmbot:{u:line:U0123456789abcdef}:lease"
    assert jobs.due(3) == "crmbot:{q3}:due" and jobs.ready(3) == "crmbot:{q3}:ready"
    assert jobs.parked(3) == "crmbot:{q3}:parked"


def test_keys_of_different_channels_differ() -> None:
    assert keys.conv(Subject("line", "U1")) != keys.conv(Subject("slack", "U1"))
    assert Subject("line", "U1").tag_name != Subject("line", "U2").tag_name


@pytest.mark.parametrize(
    "bad",
    ["", "a{b", "a}b", "{u}", "a:b", "a|b", "a b", " ", "a\tb", "a\nb", "a\rb", "x" * 129],
    ids=["empty", "open-brace", "close-brace", "braces", "colon", "bar", "space", "only-space", "tab", "lf", "cr",
         "129"],
)
@pytest.mark.parametrize("field", ["transport", "user_id"])
def test_subject_rejects_bad_identifiers(field: str, bad: str) -> None:
    args = {"transport": "line", "user_id": "U1", field: bad}
    with pytest.raises(InvalidInput, match=field):
        Subject(**args)


def test_invalid_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Subject("line", "")


def test_subject_accepts_the_longest_allowed_identifier() -> None:
    s = Subject("c" * 128, "u" * 128)
    assert keys.conv(s) == f"crmbot:{{u:{'c' * 128}:{'u' * 128}}}:conv"


def test_job_ref_format() -> None:
    assert jobs.ref(ALICE.tag_name, "m-1") == "u:line:U0123456789abcdef|m-1"


def test_a_ref_that_is_not_one_is_refused() -> None:
    for bad in ("", "no-separator", "|m-1", "u:line:U1|"):
        with pytest.raises(InvalidInput):
            jobs.parse_ref(bad)


@given(channel=ident, user_id=ident, message_id=ident)
def test_job_ref_round_trips(channel: str, user_id: str, message_id: str) -> None:
    subject = Subject(channel, user_id)
    assert jobs.parse_ref(jobs.ref(subject.tag_name, message_id)) == (subject.tag_name, message_id)


def test_a_step_runs_mark_is_in_the_slot_of_its_mailbox() -> None:
    team = keys.TeamRef("T1", "C1").tag[1:-1]
    assert keys.step_done(team, "Fx0123ABCD") == "crmbot:{t:T1:C1}:step:Fx0123ABCD"
    assert keys.step_done("ws:T1", "Fx1") == "crmbot:{ws:T1}:step:Fx1"
    assert keys.step_done(team, "Fx1").split("}")[0] == jobs.mailbox(team).split("}")[0]  # one hash slot


@pytest.mark.parametrize(("tag", "execution"), [("t:T1:C1", ""), ("t:T1:C1", "Fx 1"), ("t:T1:C1", "Fx:1"),
                                                 ("t:T1:C1", "F" * 65), ("t:T1:C1", None), ("", "Fx1"),
                                                 ("t:T1}:C1", "Fx1"), ("t:T1 C1", "Fx1")])
def test_a_step_mark_refuses_what_slack_never_sends(tag: str, execution: object) -> None:
    with pytest.raises(InvalidInput):
        keys.step_done(tag, execution)  # type: ignore[arg-type]
