"""``/console/audit``: the audit log, newest first, a page at a time, filtered by who and by action; its CSV
is ``/console/export/audit.csv`` (bot/console/tools.py). Every role may read it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from bot.console import audit
from bot.console.routes.common import page, svc

PAGE_SIZE = 50


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/audit", "audit", audit_page, methods=["GET"])


def audit_page() -> Any:
    who = request.args.get("who", "")[:200]
    action = request.args.get("action", "")[:60]
    before = request.args.get("before", "")[:40]
    found = audit.page(svc().redis, size=PAGE_SIZE, before=before, who=who, action=action)
    return page("console_audit.html", nav="audit", entries=found.entries, next=found.next, who=who,
                action=action, names=audit.names(svc().redis), actions=audit.ACTIONS, first=not before)
