"""Hardening of the Slack endpoint and the KPI modals, end to end (signed requests, real Redis, fake Slack):
malformed signing headers, replayed modal submissions, teams of another workspace, and a report that
is stored (with its channel post) before the modal closes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

from tests.bot.slack.conftest import ALICE, CH, SECRET, SlackEnv
from tests.fakes.slack_signing import event_body, sign, slash_command_body


def api_calls(env: SlackEnv) -> list[str]:
    return [c.method for c in env.fake.calls() if c.method != "auth.test"]


# ---- 1. signing headers that cannot be Slack's: 400/401, never a 500, nothing changes ------------------

BODIES = {
    "command": lambda: slash_command_body("/kpi", "setup 本店", ALICE, CH),
    "event": lambda: event_body({"type": "message", "channel": "D0ALICE", "user": ALICE, "text": "診断",
                                 "ts": "1767225600.000300", "event_ts": "1767225600.000300", "channel_type": "im"}),
}
BAD_SIGNATURES = {
    "non-ascii": "ü",
    "non-latin-1": "v0=€",
    "empty": "",
    "10kB": "v0=" + "a" * 10_000,
    "upper-case-hex": "v0=" + "A" * 64,
    "other-version": "v1=" + "0" * 64,
    "no-prefix": "0" * 64,
}
FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
BAD_TIMESTAMPS: dict[str, Callable[[int], str]] = {  # from the current time
    "letters": lambda now: "abc",
    "non-ascii": lambda now: "ü",
    "empty": lambda now: "",
    "too-large-for-a-float": lambda now: "9" * 400,
    "over-int-digit-limit": lambda now: "9" * 5000,
    "10kB": lambda now: "1" * 10_000,
    "negative": lambda now: "-1",
    "leading-space": lambda now: f" {now}",
    "full-width-digits": lambda now: str(now).translate(FULL_WIDTH),  # int() would read these
    "decimal": lambda now: f"{now}.5",
    "exponent": lambda now: "1.7e9",
}


def post_raw(env: SlackEnv, body: bytes, timestamp: str, signature: str | None) -> int:
    headers = {"Content-Type": "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded",
               "X-Slack-Request-Timestamp": timestamp}
    if signature is not None:
        headers["X-Slack-Signature"] = signature
    res = env.http.post("/slack/events", data=body, headers=headers)
    env.settle()
    return res.status_code


def assert_nothing_happened(env: SlackEnv) -> None:
    assert env.r.keys("*") == []  # not even an event's retry mark
    assert api_calls(env) == []


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("signature", BAD_SIGNATURES.values(), ids=BAD_SIGNATURES.keys())
def test_a_malformed_signature_is_refused(slack_env: SlackEnv, kind: str, signature: str) -> None:
    status = post_raw(slack_env, BODIES[kind](), str(int(time.time())), signature)
    assert status in (400, 401)
    assert_nothing_happened(slack_env)


@pytest.mark.parametrize("kind", sorted(BODIES))
@pytest.mark.parametrize("timestamp", BAD_TIMESTAMPS.values(), ids=BAD_TIMESTAMPS.keys())
def test_a_malformed_timestamp_is_refused_even_when_signed_with_it(slack_env: SlackEnv, kind: str,
                                                                   timestamp: Callable[[int], str]) -> None:
    ts = timestamp(int(time.time()))
    body = BODIES[kind]()
    status = post_raw(slack_env, body, ts, sign(SECRET, body, ts))  # type: ignore[arg-type]  # HMAC over the odd text
    assert status in (400, 401)
    assert_nothing_happened(slack_env)


@pytest.mark.parametrize("missing", ["timestamp", "signature", "both"])
def test_a_missing_signing_header_is_refused(slack_env: SlackEnv, missing: str) -> None:
    body = BODIES["command"]()
    ts = str(int(time.time()))
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Slack-Request-Timestamp": ts,
               "X-Slack-Signature": sign(SECRET, body, int(ts))}
    for name in {"timestamp": ["X-Slack-Request-Timestamp"], "signature": ["X-Slack-Signature"],
                 "both": ["X-Slack-Request-Timestamp", "X-Slack-Signature"]}[missing]:
        del headers[name]
    assert slack_env.http.post("/slack/events", data=body, headers=headers).status_code == 401
    slack_env.settle()
    assert_nothing_happened(slack_env)


def test_the_control_well_formed_headers_are_served(slack_env: SlackEnv) -> None:
    body = BODIES["command"]()
    ts = str(int(time.time()))
    assert post_raw(slack_env, body, ts, sign(SECRET, body, int(ts))) == 200
    assert slack_env.r.keys("*") != []  # the team was registered


def test_a_refused_request_body_is_not_logged(slack_env: SlackEnv, caplog: pytest.LogCaptureFixture) -> None:
    """Bolt logs a refused request's body at INFO; our logs never carry request bodies."""
    caplog.set_level(logging.DEBUG)
    body = slash_command_body("/kpi", "setup zzsecretteamname", ALICE, CH)
    ts = int(time.time())
    assert post_raw(slack_env, body, str(ts), sign("not-the-secret", body, ts)) == 401
    assert caplog.records  # the refusal itself is logged ...
    assert "zzsecretteamname" not in caplog.text  # ... without the body
    assert_nothing_happened(slack_env)
