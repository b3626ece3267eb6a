"""Fixtures of the resilience tests: the LINE and Slack environments of tests/bot, reused as they are.

Importing the fixture functions registers them for this directory too (a session-scoped fake server
here is this directory's own instance).
"""

from __future__ import annotations

from tests.bot.line.conftest import fake_line, fake_line_server, line_env  # noqa: F401
from tests.bot.slack.conftest import fake_slack, fake_slack_server, slack_env  # noqa: F401
