"""Every console page in English (``CRMBOT_LOCALE=en``) in headless Chromium: each page's language, heading,
nav and error pages, as tests/browser/test_every_page.py checks them in Japanese (its docstring lists every
page and the tests that open it)."""

from __future__ import annotations

from typing import Any

import pytest

from bot.console.texts import EN
from tests.browser.conftest import Server
from tests.browser.test_every_page import data, sweep

__all__ = ["data"]  # the module's data fixture, shared with the Japanese sweep


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    return {"CRMBOT_LOCALE": "en"}


def test_every_page_in_english(page: Any, server: Server, data: dict[str, str]) -> None:
    assert EN["lang"] == "en"
    sweep(page, server, "en")
