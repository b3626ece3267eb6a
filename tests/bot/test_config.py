"""Configuration defaults are written once: an empty environment gives the dataclass's defaults."""

from __future__ import annotations

import pytest

from bot.config import Config
from conversations.errors import ConfigError

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)


def test_an_empty_environment_gives_the_field_defaults() -> None:
    assert Config.from_env({}) == Config()


def test_a_set_variable_overrides_its_default() -> None:
    assert Config.from_env({"CRMBOT_REMIND_HOUR": "9"}).remind_hour == 9 != Config().remind_hour


SLACK = {"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-t"}
OAUTH = {"SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": "c"}


def test_consultation_settings() -> None:
    cfg = Config.from_env({"CRMBOT_CONSULT_URL": "https://example.com/book?x=1", "CRMBOT_HANDOFF_HOURS": "1.5",
                           "CRMBOT_OPERATOR_SLACK_CHANNEL": "C0OPS123", "CRMBOT_FETCH_PROFILE": "0", **SLACK})
    assert (cfg.consult_url, cfg.handoff_hours, cfg.operator_slack_channel, cfg.fetch_profile) == (
        "https://example.com/book?x=1", 1.5, "C0OPS123", False)
    settings = cfg.machine_settings()
    assert (settings.handoff, settings.consult_url) == (5400.0, "https://example.com/book?x=1")
    default = Config().machine_settings()
    assert (default.handoff, default.consult_url, Config().fetch_profile) == (24 * 3600, "", True)
    assert Config.from_env({"CRMBOT_HANDOFF_HOURS": "0"}).machine_settings().handoff == 0
    # the OAuth install: the operator's channel is in one of the workspaces, named by its ID
    oauth = Config.from_env({"CRMBOT_OPERATOR_SLACK_CHANNEL": "C0OPS123", "CRMBOT_OPERATOR_SLACK_TEAM": "T0OPS",
                             **OAUTH})
    assert (oauth.operator_slack_channel, oauth.operator_slack_team, oauth.slack_oauth) == ("C0OPS123", "T0OPS", True)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRMBOT_CONSULT_URL": "example.com/book"}, "CRMBOT_CONSULT_URL"),
        ({"CRMBOT_CONSULT_URL": "javascript:alert(1)"}, "CRMBOT_CONSULT_URL"),
        ({"CRMBOT_CONSULT_URL": "https://example.com/" + "x" * 1000}, "CRMBOT_CONSULT_URL"),
        ({"CRMBOT_HANDOFF_HOURS": "-1"}, "CRMBOT_HANDOFF_HOURS"),
        ({"CRMBOT_HANDOFF_HOURS": "a day"}, "CRMBOT_HANDOFF_HOURS"),
        ({"CRMBOT_HANDOFF_HOURS": "nan"}, "CRMBOT_HANDOFF_HOURS"),
        ({"CRMBOT_FETCH_PROFILE": "maybe"}, "CRMBOT_FETCH_PROFILE"),
        ({"CRMBOT_OPERATOR_SLACK_CHANNEL": "#consultations", **SLACK}, "CRMBOT_OPERATOR_SLACK_CHANNEL"),
        ({"CRMBOT_OPERATOR_SLACK_CHANNEL": "U0ALICE", **SLACK}, "CRMBOT_OPERATOR_SLACK_CHANNEL"),
        ({"CRMBOT_OPERATOR_SLACK_CHANNEL": "C0OPS123"}, "needs Slack configured"),
        ({"CRMBOT_OPERATOR_SLACK_CHANNEL": "C0OPS123", **OAUTH}, "needs CRMBOT_OPERATOR_SLACK_TEAM"),
        ({"CRMBOT_OPERATOR_SLACK_CHANNEL": "C0OPS123", "CRMBOT_OPERATOR_SLACK_TEAM": "#ops", **OAUTH},
         "CRMBOT_OPERATOR_SLACK_TEAM must be a Slack workspace ID"),
    ],
)
def test_bad_consultation_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


@pytest.mark.parametrize(
    ("value", "trusted"),
    [("0", None), ("off", None), ("1", "127.0.0.1"), ("yes", "127.0.0.1"), ("10.0.0.5", "10.0.0.5"),
     ("*", "*"), ("2001:DB8::0:1", "2001:db8::1")],
)
def test_the_trusted_proxy(value: str, trusted: str | None) -> None:
    assert Config.from_env({"CRMBOT_TRUST_PROXY": value}).trusted_proxy == trusted


def test_console_session_lifetimes() -> None:
    assert (Config().console_idle_hours, Config().console_session_days) == (12.0, 7.0)
    cfg = Config.from_env({"CRMBOT_CONSOLE_IDLE_HOURS": "0.5", "CRMBOT_CONSOLE_SESSION_DAYS": "30"})
    assert (cfg.console_idle_hours, cfg.console_session_days) == (0.5, 30.0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRMBOT_TRUST_PROXY": "proxy.example"}, "CRMBOT_TRUST_PROXY"),
        ({"CRMBOT_TRUST_PROXY": "10.0.0.0/8"}, "CRMBOT_TRUST_PROXY"),
        ({"CRMBOT_PROXY_HOPS": "2"}, "needs CRMBOT_TRUST_PROXY"),
        ({"CRMBOT_TRUST_PROXY": "1", "CRMBOT_PROXY_HOPS": "0"}, "CRMBOT_PROXY_HOPS"),
        ({"CRMBOT_TRUST_PROXY": "1", "CRMBOT_PROXY_HOPS": "11"}, "CRMBOT_PROXY_HOPS"),
        ({"CRMBOT_CONSOLE_IDLE_HOURS": "0"}, "CRMBOT_CONSOLE_IDLE_HOURS"),
        ({"CRMBOT_CONSOLE_SESSION_DAYS": "never"}, "CRMBOT_CONSOLE_SESSION_DAYS"),
    ],
)
def test_bad_console_and_proxy_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)


def test_coexistence_with_another_line_tool() -> None:
    assert (Config().line_forward_url, Config().line_coexist, Config().line_owned_only, Config().line_push_only) == (
        None, "off", False, False)
    first = Config.from_env({"CRMBOT_LINE_FORWARD_URL": "https://tool.example/hook/abc?k=1"})
    assert (first.line_forward_url, first.line_coexist, first.line_owned_only, first.line_push_only) == (
        "https://tool.example/hook/abc?k=1", "first", True, False)
    assert "abc" not in repr(first)  # a tool's webhook URL may carry its account's secret
    second = Config.from_env({"CRMBOT_LINE_COEXIST": "Second"})
    assert (second.line_forward_url, second.line_coexist, second.line_owned_only, second.line_push_only) == (
        None, "second", True, True)
    chained = Config.from_env({"CRMBOT_LINE_COEXIST": "second", "CRMBOT_LINE_FORWARD_URL": "https://t.example/h"})
    assert (chained.line_coexist, chained.line_forward_url) == ("second", "https://t.example/h")
    for loopback in ("http://127.0.0.1:8080/line/webhook", "http://localhost/h", "http://[::1]:9/h"):
        assert Config.from_env({"CRMBOT_LINE_FORWARD_URL": loopback}).line_forward_url == loopback


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CRMBOT_LINE_FORWARD_URL": "http://tool.example/hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "http://10.0.0.5/hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "tool.example/hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "ftp://tool.example/hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "https:///hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "https://tool.example:port/hook"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "https://tool.example/a b"}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_FORWARD_URL": "https://tool.example/" + "x" * 1000}, "CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_COEXIST": "both"}, "CRMBOT_LINE_COEXIST"),
        ({"CRMBOT_LINE_COEXIST": "first"}, "needs CRMBOT_LINE_FORWARD_URL"),
        ({"CRMBOT_LINE_COEXIST": "off", "CRMBOT_LINE_FORWARD_URL": "https://t.example/h"}, "CRMBOT_LINE_COEXIST"),
    ],
)
def test_bad_coexistence_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)
