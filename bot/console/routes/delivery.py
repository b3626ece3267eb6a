"""``/console/delivery`` (messages parked after failing, LINE's message quota, this month's pushes by kind
against the push budget (bot/push_budget.py), replies whose outcome was unknown) and the forms that put a
parked message back in line or discard it. Each parked message is said in words (bot/console/parked.py):
who it was for, what it was, what the API answered, what to do."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console.routes.common import page, svc
from bot.console.texts import texts


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/delivery", "delivery", delivery, methods=["GET"])
    bp.add_url_rule("/delivery/requeue", "requeue", requeue, methods=["POST"])
    bp.add_url_rule("/delivery/discard", "discard", discard, methods=["POST"])


def delivery() -> Any:
    from bot.console.parked import describe
    from bot.console.quota import read_quota, reply_unknown_counts
    from bot.push_budget import PushBudget

    s = svc()
    budget = PushBudget(s.redis, s.config.push_budget_month).usage(s.clock())
    return page("console_delivery.html", nav="delivery", parked=describe(s.outbox.parked(), s.redis, texts()),
                quota=read_quota(s.redis, s.line_quota, s.clock), budget=budget,
                unknown=reply_unknown_counts(s.redis, s.clock()), unknown_policy=s.config.reply_unknown)


def requeue() -> Any:
    return _act(svc().outbox.requeue, "delivery.requeue", "requeued", "requeue_failed")


def discard() -> Any:
    return _act(svc().outbox.discard_parked, "delivery.discard", "discarded", "discard_failed")


def _act(operation: Callable[[str], bool], action: str, done: str, failed: str) -> Any:
    """One parked job's requeue or discard: refused for a viewer, audited when done, said in a flash."""
    if not auth.may_change():
        abort(403)
    job_id = request.form.get("job", "")
    ok = operation(job_id)
    if ok:
        _audit(action, job_id)
    flash(texts()[done if ok else failed], "ok" if ok else "error")
    return redirect(url_for("console.delivery"))


def _audit(action: str, job_id: str) -> None:
    s = svc()
    audit.record(s.redis, who=auth.operator_name(), action=action, target=f"job:{job_id[:64]}", detail="",
                 now=s.clock())
