"""Every Redis key the product uses, built in one place.

Naming: ``crmbot:{<hash tag>}:<name>``. Everything that belongs to one user (or, later, one team)
carries the same hash tag, so all of it lives in one Redis Cluster hash slot and a Lua script may
touch it atomically. Global indexes carry their own tag.

    crmbot:{u:<channel>:<user id>}:conv            the user's conversation record (string, JSON)
    crmbot:{u:<channel>:<user id>}:seen:<event>    dedupe mark of one inbound event (string, TTL)
    crmbot:{u:<channel>:<user id>}:out             the user's outbox (hash: message id -> entry JSON)
    crmbot:{outbox}:due                            outbox index (sorted set: ref -> due time)
    crmbot:{outbox}:parked                         messages that kept failing (sorted set: ref -> time)
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.errors import InvalidInput

PREFIX = "crmbot"
OUTBOX_DUE = f"{PREFIX}:{{outbox}}:due"
OUTBOX_PARKED = f"{PREFIX}:{{outbox}}:parked"

_FORBIDDEN = set("{}:\r\n\t ")


@dataclass(frozen=True)
class Subject:
    """Who a conversation belongs to: a channel ("line", "slack", "cli") and its user ID there."""

    channel: str
    user_id: str

    def __post_init__(self) -> None:
        for name, value in (("channel", self.channel), ("user_id", self.user_id)):
            if not value or len(value) > 128 or _FORBIDDEN & set(value):
                raise InvalidInput(f"{name} {value[:20]!r} is not a valid identifier")

    @property
    def tag(self) -> str:
        return f"{{u:{self.channel}:{self.user_id}}}"


def conv(subject: Subject) -> str:
    return f"{PREFIX}:{subject.tag}:conv"


def seen(subject: Subject, event_id: str) -> str:
    return f"{PREFIX}:{subject.tag}:seen:{event_id}"


def outbox(subject: Subject) -> str:
    return f"{PREFIX}:{subject.tag}:out"


def outbox_ref(subject: Subject, message_id: str) -> str:
    """Member of the outbox index naming one message: ``<channel>:<message id>:<user id>``."""
    return f"{subject.channel}:{message_id}:{subject.user_id}"


def parse_outbox_ref(ref: str) -> tuple[Subject, str]:
    channel, message_id, user_id = ref.split(":", 2)
    return Subject(channel, user_id), message_id
