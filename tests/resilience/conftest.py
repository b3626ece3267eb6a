"""Fixtures of the resilience tests: the LINE and Slack environments of tests/bot, reused as they are, and a
Redis server a test may stop and restart.

Importing the fixture functions registers them for this directory too (a session-scoped fake server
here is this directory's own instance).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.line.conftest import fake_line, fake_line_server, line_env  # noqa: F401
from tests.bot.slack.conftest import fake_slack, fake_slack_server, slack_env  # noqa: F401
from tests.redis_server import RedisServer


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis server of the test's own, with persistence on, that the test may stop and start again."""
    server = RedisServer(persist=True, data_dir=str(tmp_path)).start()
    yield server
    server.stop()
