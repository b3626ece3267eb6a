"""Configuration defaults are written once: an empty environment gives the dataclass's defaults."""

from __future__ import annotations

from bot.config import Config


def test_an_empty_environment_gives_the_field_defaults() -> None:
    assert Config.from_env({}) == Config()


def test_a_set_variable_overrides_its_default() -> None:
    assert Config.from_env({"CRMBOT_REMIND_HOUR": "9"}).remind_hour == 9 != Config().remind_hour
