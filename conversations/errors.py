"""The project's one exception tree.

CrmbotError
├── ConfigError        bad or missing configuration; stops start-up naming the variable
│   └── ContentError   a conversation script file is malformed; names the file and the field
├── StoreUnavailable   Redis does not answer (webhooks answer 503, LINE redelivers)
├── Contention         a record kept changing under concurrent writers; nothing was changed, try again
└── InvalidInput       input the product refuses; nothing is changed

Lower-level errors (redis-py's) are translated into this tree in one place: the Redis runners of
:mod:`conversations.redis_ops`, through which every Redis call goes (a test fails when a redis-py
error is named anywhere else).
"""

from __future__ import annotations


class CrmbotError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(CrmbotError):
    """Configuration is missing or invalid."""


class ContentError(ConfigError):
    """A content (conversation script) file is malformed.

    The message always starts with the file path and the dotted field path.
    """

    def __init__(self, path: str, field: str, problem: str) -> None:
        self.path = path
        self.field = field
        self.problem = problem
        super().__init__(f"{path}: {field}: {problem}")


class StoreUnavailable(CrmbotError):
    """The Redis store cannot be reached."""


class Busy(CrmbotError):
    """Another process is changing what was asked for (e.g. refreshing a token); try again in a moment."""


class Contention(CrmbotError):
    """A compare-and-set kept losing to concurrent writers; nothing was changed. Not an outage."""


class InvalidInput(CrmbotError, ValueError):
    """Input that is refused; nothing was changed."""
