"""Observe, the unit parts: what a committed step counts, the metrics token, the settings, the JSON log
line and the scrubbing of error reports (no Redis, no process, no server)."""

from __future__ import annotations

import json
import logging
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot import metrics
from bot.config import Config
from bot.error_reports import before_send, scrubbed
from bot.logs import JsonFormatter, uid
from conversations.errors import ConfigError
from conversations.machine import ASKING, DONE, Conv
from conversations.outputs import ConsultAck, Question, Result

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

LINE_USER = "U" + "0123456789abcdef" * 2


def test_a_step_counts_a_start_a_finish_by_tier_and_a_first_consultation() -> None:
    idle = Conv()
    asking = Conv(state=ASKING, sid=1)
    assert metrics.step_counts(idle, asking, [Question(1, 0)]) == (True, [], 0)
    assert metrics.step_counts(asking, Conv(state=ASKING, sid=1, q=1), [Question(1, 1)]) == (False, [], 0)
    done = Conv(state=DONE, sid=1, last="AAAAAAAACD")
    assert metrics.step_counts(asking, done, [Result(1, "AAAAAAAACD")]) == (False, ["B"], 0)
    assert metrics.step_counts(done, done, [Result(1, "AAAAAAAACD", again=True)]) == (False, [], 0)  # shown again
    assert metrics.step_counts(done, done, [ConsultAck(1)]) == (False, [], 1)
    assert metrics.step_counts(done, done, [ConsultAck(1, again=True)]) == (False, [], 0)  # asked again
    assert metrics.step_counts(done, Conv(state=ASKING, sid=2), [Question(2, 0)]) == (True, [], 0)  # a retake
    assert metrics.step_counts(done, None, []) == (False, [], 0)  # unfollow: the record went


def test_the_try_pages_test_users_are_not_counted() -> None:
    before = metrics.DIAGNOSES_STARTED._value.get()
    metrics.committed("web", Conv(), Conv(state=ASKING, sid=1), [Question(1, 0)])
    assert metrics.DIAGNOSES_STARTED._value.get() == before
    metrics.committed("line", Conv(), Conv(state=ASKING, sid=1), [Question(1, 0)])
    assert metrics.DIAGNOSES_STARTED._value.get() == before + 1


@pytest.mark.parametrize(("header", "ok"), [
    (None, False), ("", False), ("Bearer wrong-token-0000000", False), ("Basic dG9rZW4=", False),
    ("Bearer the-metrics-token-123", True), ("bearer  the-metrics-token-123", True),
])
def test_the_token_is_asked_as_a_bearer(header: str | None, ok: bool) -> None:
    assert metrics.authorized(header, "the-metrics-token-123") is ok
    assert metrics.authorized(header, None) is True  # no token configured: open


def test_the_worker_and_clock_app_answers_401_without_the_token_and_the_text_format_with_it() -> None:
    app = metrics.metrics_app("the-metrics-token-123")
    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def call(path: str, auth: str | None = None) -> bytes:
        environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET", "QUERY_STRING": ""}
        if auth:
            environ["HTTP_AUTHORIZATION"] = auth
        return b"".join(app(environ, lambda status, headers, exc=None: seen.append((status, headers))))

    assert call("/metrics") == metrics.UNAUTHORIZED and seen[-1][0].startswith("401")
    assert ("WWW-Authenticate", 'Bearer realm="crmbot metrics"') in seen[-1][1]
    body = call("/metrics", "Bearer the-metrics-token-123").decode()
    assert seen[-1][0].startswith("200")
    names = {family.name for family in text_string_to_metric_families(body)}
    assert {"crmbot_deliveries", "crmbot_api_responses", "crmbot_reminder_passes", "process_cpu_seconds"} <= names
    assert call("/other", "Bearer the-metrics-token-123").startswith(b"not found") and seen[-1][0].startswith("404")


def test_observe_settings() -> None:
    cfg = Config.from_env({"CRMBOT_METRICS_TOKEN": "t" * 16, "CRMBOT_METRICS_PORT": "9100",
                           "CRMBOT_LOG_FORMAT": "JSON", "SENTRY_DSN": "https://key@o1.ingest.example.io/2"})
    assert (cfg.metrics_token, cfg.metrics_address, cfg.log_format) == ("t" * 16, ("0.0.0.0", 9100), "json")
    assert cfg.sentry_dsn == "https://key@o1.ingest.example.io/2"
    assert "t" * 16 not in repr(cfg) and "key@" not in repr(cfg)
    assert Config.from_env({"CRMBOT_METRICS_PORT": "127.0.0.1:9101"}).metrics_address == ("127.0.0.1", 9101)
    assert Config.from_env({"CRMBOT_METRICS_PORT": "[::1]:9102"}).metrics_address == ("::1", 9102)
    default = Config()
    assert (default.metrics_token, default.metrics_address, default.log_format, default.sentry_dsn) == (
        None, None, "text", None)


@pytest.mark.parametrize(("env", "name"), [
    ({"CRMBOT_METRICS_TOKEN": "short"}, "CRMBOT_METRICS_TOKEN"),
    ({"CRMBOT_METRICS_PORT": "0"}, "CRMBOT_METRICS_PORT"),
    ({"CRMBOT_METRICS_PORT": "70000"}, "CRMBOT_METRICS_PORT"),
    ({"CRMBOT_METRICS_PORT": "metrics:9100"}, "CRMBOT_METRICS_PORT"),
    ({"CRMBOT_METRICS_PORT": ":9100"}, "CRMBOT_METRICS_PORT"),
    ({"CRMBOT_LOG_FORMAT": "xml"}, "CRMBOT_LOG_FORMAT"),
    ({"SENTRY_DSN": "not-a-dsn"}, "SENTRY_DSN"),
])
def test_bad_observe_settings_name_their_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env)


def _record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    info = None
    if exc:
        try:
            raise ValueError("line 1\nline 2")
        except ValueError:
            info = sys.exc_info()
    return logging.LogRecord("slack_bolt.App", logging.WARNING, __file__, 1, message, args, info)


def test_a_json_log_line_is_one_object_on_one_line_cleaned_as_the_text_lines() -> None:
    line = JsonFormatter().format(_record("forged\nline %s (body: {\"text\": \"secret words\"})", "x\u2028y",
                                          exc=True))
    assert "\n" not in line and "\u2028" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING" and entry["logger"] == "slack_bolt.App"
    assert entry["message"] == "forged\\nline x\\u2028y (body: [not logged]"
    assert "secret words" not in line
    assert entry["exc"].startswith("Traceback") and "ValueError: line 1\nline 2" in entry["exc"]
    assert entry["time"].endswith("+00:00")


def test_an_error_report_keeps_no_request_user_text_or_line_user_id() -> None:
    event = {
        "request": {"url": "https://bot.example.com/line/webhook", "data": "{\"text\": \"secret words\"}"},
        "user": {"id": LINE_USER}, "extra": {"user": LINE_USER, "text": "secret words"},
        "logentry": {"message": "line webhook: failed for %s (body: %s)", "params": [LINE_USER, "secret words"]},
        "exception": {"values": [{
            "type": "ApiException", "value": f"HTTP 400 for {LINE_USER}\nbody: secret words",
            "stacktrace": {"frames": [{"function": "handle", "vars": {"text": "secret words"}}]}}]},
        "breadcrumbs": {"values": [{"category": "httplib", "data": {"url": f"/v2/bot/profile/{LINE_USER}"}},
                                   {"category": "bot", "message": f"answered {LINE_USER}"}]},
    }
    out = json.dumps(before_send(event))
    assert LINE_USER not in out and "secret words" not in out
    assert "request" not in event and "user" not in event and "extra" not in event
    assert event["logentry"] == {"message": f"line webhook: failed for {uid(LINE_USER)} (body: [not logged]"}
    assert event["exception"]["values"][0]["value"] == f"HTTP 400 for {uid(LINE_USER)}\\nbody: [not logged]"
    assert event["breadcrumbs"]["values"][1]["message"] == f"answered {uid(LINE_USER)}"
    assert scrubbed("plain") == "plain"
