"""Every Redis key of the operator console, built in one place.

The console's keys share one Redis Cluster hash slot (``{console}``), so the throttle's script may touch
the client's and the account's counters together; none of them belongs to a user or a team.

    crmbot:{console}:session:<sha256 of the id>   a console session (hash: data, created, seen; expiring)
    crmbot:{console}:login:<client>               failed logins of one client address (hash: fails, until)
    crmbot:{console}:account:<sha256 of account>  failed logins against one account, from anywhere (same)
    crmbot:{console}:once:<sha256 of the token>   a one-time login link of ``crmbot serve`` (string, TTL)
    crmbot:{console}:calendar                     the bookings feed's secret token (string; rotatable)

Session ids, accounts (e-mail addresses, once operators have their own) and login tokens appear only as
digests: a copy of the database gives no working cookie or link, and no address. The calendar token is
kept as it is, so the console can show the feed's URL again: it opens only the bookings, which the same
database holds anyway.
"""

from __future__ import annotations

import hashlib

PREFIX = "crmbot:{console}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def session(session_id: str) -> str:
    return f"{PREFIX}:session:{_digest(session_id)}"


def client_throttle(client: str) -> str:
    return f"{PREFIX}:login:{client}"


def account_throttle(account: str) -> str:
    return f"{PREFIX}:account:{_digest(account.strip().lower())}"


def once(token: str) -> str:
    return f"{PREFIX}:once:{_digest(token)}"


CALENDAR_TOKEN = f"{PREFIX}:calendar"
