"""``/console/delivery`` (messages parked after failing, LINE's message quota, replies whose outcome was
unknown) and the form that puts a parked message back in line."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console.routes.common import page, svc
from bot.console.texts import texts


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/delivery", "delivery", delivery, methods=["GET"])
    bp.add_url_rule("/delivery/requeue", "requeue", requeue, methods=["POST"])


def delivery() -> Any:
    from bot.console.quota import read_quota, reply_unknown_counts

    s = svc()
    return page("console_delivery.html", nav="delivery", parked=s.outbox.parked(),
                quota=read_quota(s.redis, s.line_quota, s.clock),
                unknown=reply_unknown_counts(s.redis, s.clock()), unknown_policy=s.config.reply_unknown)


def requeue() -> Any:
    job_id = request.form.get("job", "")
    ok = svc().outbox.requeue(job_id)
    if ok:
        audit.record(svc().redis, who=auth.operator_name(), action="delivery.requeue", target=f"job:{job_id[:64]}",
                     now=svc().clock())
    flash(texts()["requeued" if ok else "requeue_failed"], "ok" if ok else "error")
    return redirect(url_for("console.delivery"))
