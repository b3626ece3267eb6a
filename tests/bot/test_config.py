"""Configuration defaults are written once: an empty environment gives the dataclass's defaults."""

from __future__ import annotations

import pytest

from bot.config import Config
from conversations.errors import ConfigError


def test_an_empty_environment_gives_the_field_defaults() -> None:
    assert Config.from_env({}) == Config()


def test_a_set_variable_overrides_its_default() -> None:
    assert Config.from_env({"CRMBOT_REMIND_HOUR": "9"}).remind_hour == 9 != Config().remind_hour


SLACK = {"SLACK_SIGNING_SECRET": "s", "SLACK_BOT_TOKEN": "xoxb-t"}


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
    ],
)
def test_bad_consultation_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config.from_env(env)
