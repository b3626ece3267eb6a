"""``/console/leads`` (one row per diagnosis, filtered, a page at a time), a lead (and the form that sets
its consultation status), a person (every diagnosis they took)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console import leads as leads_mod
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from conversations.analytics import LEAD_STATUSES, STATUSES
from conversations.keys import Subject
from conversations.transports import Transport
from scoring import TIERS


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/leads", "leads", leads, methods=["GET"])
    bp.add_url_rule("/leads/<lead_id>", "lead", lead, methods=["GET"])
    bp.add_url_rule("/leads/<lead_id>/consult", "set_consult", set_consult, methods=["POST"])
    bp.add_url_rule("/leads/<lead_id>/erase", "erase_person", erase_person, methods=["POST"])
    bp.add_url_rule("/people/<channel>/<user_id>", "person", person, methods=["GET"])


def leads() -> Any:
    f = leads_mod.Filters.parse(request.args)
    found: list[Any] = []
    more = False
    if not f.error:
        found = leads_mod.analytics(svc()).leads(limit=leads_mod.PAGE_SIZE + 1,
                                                 offset=(f.page - 1) * leads_mod.PAGE_SIZE, **f.kwargs())
        more = len(found) > leads_mod.PAGE_SIZE
        found = found[:leads_mod.PAGE_SIZE]
    return page("console_leads.html", nav="leads", f=f, leads=found, more=more, L=leads_mod,
                now=svc().clock(), expiry=svc().config.conversation_ttl, script=svc().script,
                error=texts()["bad_date"] if f.error else "", statuses=STATUSES, progresses=LEAD_STATUSES,
                tiers=TIERS, channels=leads_mod.CHANNELS)


def lead(lead_id: str) -> Any:
    found = leads_mod.analytics(svc()).lead(lead_id)
    if found is None:
        abort(404)
    return page("console_lead.html", nav="leads", lead=found, L=leads_mod, now=svc().clock(),
                expiry=svc().config.conversation_ttl, script=svc().script, statuses=STATUSES,
                audit_entries=audit.for_target(svc().redis, audit.lead_target(lead_id), 20))


def set_consult(lead_id: str) -> Any:
    a = leads_mod.analytics(svc())
    if a.lead(lead_id) is None:
        abort(404)
    status = request.form.get("status", "")
    who = auth.operator_name()
    ok = status in STATUSES and a.set_consult_status(lead_id, status, by=who, now=svc().clock())
    if ok:
        audit.record(svc().redis, who=who, action="lead.status", target=audit.lead_target(lead_id), detail=status,
                     now=svc().clock())
    flash(texts()["status_saved" if ok else "status_not_saved"], "ok" if ok else "error")
    target = request.form.get("next", "")
    return redirect(target if target.startswith("/console/") and not target.startswith("//")
                    else url_for("console.lead", lead_id=lead_id))


def erase_person(lead_id: str) -> Any:
    """Delete every key of the lead's person (bot/privacy.py), once the operator ticked the confirmation;
    written to the audit stream as the operator's, without the person's data."""
    found = leads_mod.analytics(svc()).lead(lead_id)
    if found is None:
        abort(404)
    eraser = svc().bot.eraser
    if request.form.get("confirm") != "yes" or eraser is None:
        flash(texts()["erase_unconfirmed"], "error")
        return redirect(url_for("console.lead", lead_id=lead_id))
    who = auth.operator_name()
    eraser.erase(Subject(Transport.parse(found.channel), found.user_id), by=who)
    audit.record(svc().redis, who=who, action="lead.erase", target=audit.lead_target(lead_id), now=svc().clock())
    flash(texts()["erased"], "ok")
    return redirect(url_for("console.leads"))


def person(channel: str, user_id: str) -> Any:
    found = leads_mod.analytics(svc()).person(channel, user_id)
    if not found:
        abort(404)
    return page("console_person.html", nav="leads", person=found, L=leads_mod, now=svc().clock(),
                expiry=svc().config.conversation_ttl, script=svc().script, rows=leads_mod.compare(found))
