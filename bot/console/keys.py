"""Every Redis key of the operator console, built in one place.

The console's keys share one Redis Cluster hash slot (``{console}``), so the throttle's script may touch
the client's and the account's counters together; none of them belongs to a user or a team.

    crmbot:{console}:session:<sha256 of the id>   a console session (hash: data, created, seen; expiring)
    crmbot:{console}:login:<client>               failed logins of one client address (hash: fails, until)
    crmbot:{console}:account:<sha256 of account>  failed logins against one account, from anywhere (same)
    crmbot:{console}:once:<sha256 of the token>   a one-time login link of ``crmbot serve`` (string, TTL)
    crmbot:{console}:calendar                     the bookings feed's secret token (string; rotatable)
    crmbot:{console}:operators                    the operators (hash: operator id -> JSON record)
    crmbot:{console}:operator-emails              e-mail index (hash: sha256 of the address -> operator id)
    crmbot:{console}:operator-sessions:<id>       an operator's sessions (sorted set: session digest -> login time)
    crmbot:{console}:settings                     console-wide settings (hash: totp_required)
    crmbot:{console}:audit                        the audit log (stream, about 100 000 entries kept)
    crmbot:{console}:audit-target:<sha256>        the audit entries about one record (list of stream ids, newest
                                                  first, 200 kept)

Session ids, accounts (the e-mail addresses the throttle and the index count by) and login tokens appear
only as digests (an operator's own record holds their address, for the operators page): a copy of the
database gives no working cookie or link. The calendar token is kept as it is, so the console can show the
feed's URL again: it opens only the bookings, which the same database holds anyway.
"""

from __future__ import annotations

import hashlib

PREFIX = "crmbot:{console}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{_digest(session_id)}"


def session_digest(session_id: str) -> str:
    """What an operator's session list names a session by (never the id itself)."""
    return _digest(session_id)


def session_by_digest(digest: str) -> str:
    return f"{PREFIX}:session:{digest}"


OPERATORS = f"{PREFIX}:operators"
OPERATOR_EMAILS = f"{PREFIX}:operator-emails"
SETTINGS = f"{PREFIX}:settings"
AUDIT = f"{PREFIX}:audit"


def email_digest(email: str) -> str:
    return _digest(email.strip().lower())


def operator_sessions(operator_id: str) -> str:
    return f"{PREFIX}:operator-sessions:{operator_id}"


def audit_target(target: str) -> str:
    return f"{PREFIX}:audit-target:{_digest(target)}"


def client_throttle(client: str) -> str:
    return f"{PREFIX}:login:{client}"


def account_throttle(account: str) -> str:
    return f"{PREFIX}:account:{_digest(account.strip().lower())}"


def once(token: str) -> str:
    return f"{PREFIX}:once:{_digest(token)}"


CALENDAR_TOKEN = f"{PREFIX}:calendar"
