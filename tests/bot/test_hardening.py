"""Logging hardening: one record is one line whatever it carries, and request bodies never reach the log.

Each test installs the product's logging (bot.logs.setup(), as every crmbot command does) and reads
what its handler wrote to stderr; the root logger is restored afterwards.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import redis

from bot.app import build_services, create_app
from bot.logs import clean, setup
from bot.web import WebServer
from tests.bot.line.conftest import line_config
from tests.bot.line.helpers import TOKEN as LINE_TOKEN
from tests.bot.line.helpers import sign as line_sign
from tests.bot.slack.conftest import SECRET as SLACK_SECRET
from tests.bot.slack.conftest import TOKEN, slack_config
from tests.fakes.line_api import FakeLineApi
from tests.fakes.slack_api import FakeSlackApi
from tests.fakes.slack_signing import signed_headers, slash_command_body

RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.:-]+: ")


@pytest.fixture
def product_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    setup("INFO")
    try:
        yield
    finally:
        for h in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(h)
        root.setLevel(level)


def logged(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_attacker_text_in_an_argument_stays_on_one_line(product_logging: None, capsys) -> None:
    forged = "Ann\nFAKE LINE\r\n2026-01-01 00:00:00,000 INFO crmbot: forged\x1b[2J\u2028\x85end"
    logging.getLogger("crmbot.test").warning("user said %s (%d bytes)", forged, len(forged))
    lines = logged(capsys)
    assert len(lines) == 1, lines
    assert RECORD.match(lines[0])
    said = " WARNING crmbot.test: user said Ann\\nFAKE LINE\\r\\n2026-01-01 00:00:00,000 INFO crmbot: forged"
    assert said in lines[0]
    assert "\\x1b[2J\\u2028\\x85end" in lines[0]


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record(product_logging: None, capsys) -> None:
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO crmbot: forged")
    except ValueError:
        logging.getLogger("crmbot.test").exception("failed on %s", "x\ny")
    lines = logged(capsys)
    assert RECORD.match(lines[0]) and lines[0].endswith("failed on x\\ny")
    assert len(lines) > 3 and all(line.startswith("  | ") for line in lines[1:])
    assert [line for line in lines if RECORD.match(line)] == lines[:1]
    assert any("ValueError: bad" in line for line in lines)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("request body: {'token': 'x'}", "request body: [not logged]"),
        ("Responding with status: 200 body: \"hi\" (3 millis)", "Responding with status: 200 body: [not logged]"),
        ("no Body: here\nsecond line", "no body: [not logged]"),
        ("nobody: stays", "nobody: stays"),
    ],
)
def test_clean_redacts_any_body_part(message: str, expected: str) -> None:
    assert clean(message) == expected


def test_bolts_invalid_signature_message_carries_no_body(
    r: redis.Redis, redis_url: str, product_logging: None, capsys
) -> None:
    """slack_bolt logs "Invalid request signature detected (signature: ..., timestamp: ..., body: <raw>)"
    at INFO; through our handler the raw body is gone and the record is one line."""
    with FakeSlackApi(bot_token=TOKEN) as fake:
        svc = build_services(slack_config(redis_url, fake))
        try:
            http = create_app(services=svc).test_client()
            body = slash_command_body("/kpi", "SECRET-BODY-TEXT\n2026-01-01 00:00:00,000 INFO x: forged", "U1", "C1")
            headers = signed_headers("not-the-signing-secret", body)
            capsys.readouterr()
            res = http.post("/slack/events", data=body, headers=headers)
            assert res.status_code == 401
        finally:
            svc.redis.close()
    lines = logged(capsys)
    # Bolt's own logger is kept at WARNING (bot/slack/app.py), so its INFO line about the refused
    # signature is not emitted at all; were it emitted, the handler would cut its body.
    bolt = [line for line in lines if "Invalid request signature detected" in line]
    assert all(RECORD.match(line) and line.endswith("body: [not logged]") for line in bolt), bolt
    assert not any("SECRET-BODY-TEXT" in line or "forged" in line for line in lines)


def test_a_bolt_like_record_loses_its_body_but_keeps_what_comes_before(product_logging: None, capsys) -> None:
    """A record as slack_bolt writes it (RequestVerification, at INFO when its logger lets it through)."""
    bolt = logging.getLogger("slack_bolt.App")
    # Bolt copies the root logger's level into its loggers when an app is made: an app made by an earlier
    # test in this process (root at WARNING then) would drop the record before any handler sees it.
    level, disabled = bolt.level, bolt.disabled
    bolt.setLevel(logging.INFO)
    bolt.disabled = False
    try:
        bolt.info("Invalid request signature detected (signature: v0=%s, timestamp: %d, body: %s)",
                  "ab" * 32, 1_775_001_600, "token=x&text=SECRET-BODY-TEXT%0A2026-01-01 00:00:00,000 INFO x: forged")
    finally:
        bolt.setLevel(level)
        bolt.disabled = disabled
    lines = logged(capsys)
    assert len(lines) == 1 and RECORD.match(lines[0]), lines
    assert lines[0].endswith(" INFO slack_bolt.App: Invalid request signature detected (signature: v0="
                             + "ab" * 32 + ", timestamp: 1775001600, body: [not logged]"), lines
    assert "SECRET-BODY-TEXT" not in lines[0] and "forged" not in lines[0]


def test_a_refused_body_logs_its_reason_and_not_the_body(
    redis_url: str, product_logging: None, capsys
) -> None:
    """Our refusals of a malformed LINE or Slack body name the reason (the exception type, the field)."""
    with FakeSlackApi(bot_token=TOKEN) as fake_slack, FakeLineApi(access_token=LINE_TOKEN) as fake_line:
        config = line_config(redis_url, fake_line).with_(
            slack_signing_secret=SLACK_SECRET, slack_bot_token=TOKEN, slack_api_url=fake_slack.base_url)
        svc = build_services(config)
        try:
            http = create_app(services=svc).test_client()
            capsys.readouterr()
            line_body = b'{"events": [SECRET-BODY-TEXT'
            res = http.post("/line/webhook", data=line_body, headers={"X-Line-Signature": line_sign(line_body)})
            assert res.status_code == 400
            slack_body = b'["SECRET-BODY-TEXT"]'
            res = http.post("/slack/events", data=slack_body,
                            headers={**signed_headers(SLACK_SECRET, slack_body), "Content-Type": "application/json"})
            assert res.status_code == 400
        finally:
            svc.redis.close()
    lines = logged(capsys)
    assert any(line.endswith(" WARNING bot.line.webhook: line webhook: malformed body (JSONDecodeError), refused")
               for line in lines), lines
    assert any(line.endswith(" WARNING bot.slack.app: slack: malformed request body (not an object)")
               for line in lines), lines
    assert all(RECORD.match(line) for line in lines), lines
    assert not any("SECRET-BODY-TEXT" in line or "[not logged]" in line for line in lines), lines


def test_waitress_logs_through_the_product_handler(product_logging: None, capsys) -> None:
    """waitress's own logger ("waitress") goes through the same handler and format: here its warning
    that the connection limit is reached (the limit counts the server's own pipes and listening socket)."""

    def app(environ: dict, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = WebServer(app, "127.0.0.1", 0, threads=1, connection_limit=4)
    thread = threading.Thread(target=server.run, name="web-test", daemon=True)
    thread.start()
    client = socket.create_connection(server.addresses[0], timeout=5)
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 10
        while not any("connection limit" in line for line in seen):
            assert time.monotonic() < deadline, seen
            seen += logged(capsys)
            time.sleep(0.02)  # polling the captured stderr, bounded by the deadline
    finally:
        client.close()
        server.stop()
        thread.join(timeout=15)
    assert not thread.is_alive()
    line = next(line for line in seen if "connection limit" in line)
    assert RECORD.match(line) and " WARNING waitress: total open connections reached the connection limit" in line
