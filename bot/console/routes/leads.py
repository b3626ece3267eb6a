"""``/console/leads`` (one row per diagnosis: filtered, searched, sorted, a numbered page at a time, with the
total), a lead (its consultation status, assignee, notes and history), a person (every diagnosis they took).

Lead and person URLs carry the lead's opaque id (bot/console/refs.py), never a LINE user ID. Every change
is refused (403) to an operator who may not change anything, and written to the audit log."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth, refs
from bot.console import leads as leads_mod
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from conversations.analytics import LEAD_STATUSES, STATUSES, Lead
from conversations.errors import InvalidInput
from conversations.keys import Subject
from conversations.lead_work import NOTE_MAX, Change, LeadWork, clean_name
from conversations.transports import Transport
from scoring import TIERS


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/leads", "leads", leads, methods=["GET"])
    bp.add_url_rule("/leads/<ref>", "lead", lead, methods=["GET"])
    bp.add_url_rule("/leads/<ref>/consult", "set_consult", set_consult, methods=["POST"])
    bp.add_url_rule("/leads/<ref>/assign", "assign", assign, methods=["POST"])
    bp.add_url_rule("/leads/<ref>/note", "add_note", add_note, methods=["POST"])
    bp.add_url_rule("/leads/<ref>/erase", "erase_person", erase_person, methods=["POST"])
    bp.add_url_rule("/people/<ref>", "person", person, methods=["GET"])


def leads() -> Any:
    f = leads_mod.Filters.parse(request.args)
    found: list[Any] = []
    total, cursor = 0, ""
    if not f.error:
        got = leads_mod.query(svc()).page(f.as_query(), offset=(f.page - 1) * leads_mod.PAGE_SIZE,
                                          limit=leads_mod.PAGE_SIZE)
        found, total, cursor = got.leads, got.total, got.cursor
    last = max(1, -(-total // leads_mod.PAGE_SIZE))
    return page("console_leads.html", nav="leads", f=f, leads=found, total=total, last=last, cursor=cursor,
                pages=leads_mod.pages(f.page, last), L=leads_mod, now=svc().clock(),
                expiry=svc().config.conversation_ttl, script=svc().script,
                error=texts()["bad_date"] if f.error else "", statuses=STATUSES, progresses=LEAD_STATUSES,
                tiers=TIERS, channels=leads_mod.CHANNELS)


def _found(ref: str) -> Lead:
    a = leads_mod.analytics(svc())
    lead_id = refs.resolve(a, ref)
    found = a.lead(lead_id) if lead_id else None
    if found is None:
        abort(404)
    return found


def _work() -> LeadWork:
    return LeadWork(svc().redis, clock=svc().clock)


def lead(ref: str) -> Any:
    found = _found(ref)
    work = _work()
    me = auth.operator_name()
    names = list(dict.fromkeys([me, *work.assignees()]))
    return page("console_lead.html", nav="leads", lead=found, L=leads_mod, now=svc().clock(),
                expiry=svc().config.conversation_ttl, script=svc().script, statuses=STATUSES,
                notes=work.notes(found.id), history=_history(found, work), assignees=names,
                note_form=secrets.token_urlsafe(12), note_max=NOTE_MAX, may_change=auth.may_change(),
                audit_entries=audit.for_target(svc().redis, audit.lead_target(found.id), 20), **lead_bookings(found),
                **lead_handoff(found))


def lead_handoff(found: Lead) -> dict[str, Any]:
    """What the lead page's handoff section (console_lead_handoff.html) needs: the person's conversation with
    the operator during handoffs (conversations.handoff_log), oldest first, the owner's unread messages
    marked, each reply with its writer's Slack name as the worker cached it. Looking marks nothing read."""
    from conversations import handoff_log
    from conversations.slack_names import SlackNames

    entries = handoff_log.read(svc().redis, Subject(Transport.parse(found.channel), found.user_id))
    names = SlackNames(svc().redis).get([(e.ws, e.by) for e in entries if e.who == handoff_log.OPERATOR])
    return {"convo": entries, "convo_unread": sum(e.unread for e in entries),
            "convo_names": names}


def lead_bookings(found: Any) -> dict[str, Any]:
    """What the lead page's bookings section (console_lead_bookings.html) needs: the person's bookings."""
    from bot.console import consultations as consult
    from conversations.booking import Bookings

    person = Subject(Transport.parse(found.channel), found.user_id)
    return {"lead_bookings": consult.rows(svc(), Bookings(svc().redis, clock=svc().clock).bookings_of(person)[::-1]),
            "can_change": auth.may_change(), "back": request.path, "C": consult}


def _history(found: Lead, work: LeadWork) -> list[Change]:
    """The lead's changes, oldest first, with the owner's consultation request among them."""
    changes = work.history(found.id)
    if found.requested:
        changes.append(Change(found.requested, "", "requested", "", "new"))
    return sorted(changes, key=lambda c: c.at)


def _changing(ref: str) -> Lead:
    """The lead a change is about: 403 when this operator may change nothing, 404 when there is none."""
    if not auth.may_change():
        abort(403)
    return _found(ref)


def _audit(action: str, found: Lead, detail: str = "") -> None:
    """One entry of the audit log, naming the lead as the audit does (a hash of its id)."""
    audit.record(svc().redis, who=auth.operator_name(), action=action, target=audit.lead_target(found.id),
                 detail=detail, now=svc().clock())


def _tell_endpoints(found: Lead, change: str, value: str) -> None:
    """lead.updated for the client's webhook endpoints (bot/webhooks.py), once per change made here."""
    from bot.webhooks import Webhooks

    s = svc()
    now = s.clock()
    Webhooks(s.outbox, s.clock).lead_updated(found, change=change, value=value, by=auth.operator_name(),
                                             change_id=f"{found.id}:{change}:{value}:{now!r}")


def set_consult(ref: str) -> Any:
    found = _changing(ref)
    status = request.form.get("status", "")
    done = 0
    if status in STATUSES:
        done = leads_mod.analytics(svc()).set_consult(found.id, status, by=auth.operator_name(), now=svc().clock())
    if done == 1:
        _audit("lead.status", found, status)
        _tell_endpoints(found, "status", status)
    flash(texts()["status_saved" if done else "status_not_saved"], "ok" if done else "error")
    target = request.form.get("next", "")
    return redirect(target if target.startswith("/console/") and not target.startswith("//")
                    else url_for("console.lead", ref=ref))


def assign(ref: str) -> Any:
    found = _changing(ref)
    done = _work().assign(found.id, request.form.get("assignee", ""), by=auth.operator_name())
    if done == 1:
        _audit("lead.assign", found, clean_name(request.form.get("assignee", "")))
        _tell_endpoints(found, "assignee", clean_name(request.form.get("assignee", "")))
    flash(texts()["assigned" if done else "assign_not_saved"], "ok" if done else "error")
    return redirect(url_for("console.lead", ref=ref) + "#lead-work")


def add_note(ref: str) -> Any:
    found = _changing(ref)
    t = texts()
    try:
        done = _work().add_note(found.id, request.form.get("note", ""), by=auth.operator_name(),
                                form_id=request.form.get("form", ""))
    except InvalidInput:
        text = request.form.get("note", "").strip()
        flash(t["note_too_long"].format(n=NOTE_MAX) if text else t["note_empty"], "error")
        return redirect(url_for("console.lead", ref=ref) + "#lead-work")
    if done == 1:
        _audit("lead.note", found)  # the note's text stays out of the audit log
    flash(t["note_added"], "ok")
    return redirect(url_for("console.lead", ref=ref) + "#lead-notes")


def erase_person(ref: str) -> Any:
    """Delete every key of the lead's person (bot/privacy.py), once the operator ticked the confirmation;
    written to the audit stream as the operator's, without the person's data."""
    found = _changing(ref)
    eraser = svc().bot.eraser
    if request.form.get("confirm") != "yes" or eraser is None:
        flash(texts()["erase_unconfirmed"], "error")
        return redirect(url_for("console.lead", ref=ref))
    eraser.erase(Subject(Transport.parse(found.channel), found.user_id), by=auth.operator_name())
    _audit("lead.erase", found)
    flash(texts()["erased"], "ok")
    return redirect(url_for("console.leads"))


def person(ref: str) -> Any:
    one = _found(ref)
    found = leads_mod.analytics(svc()).person(one.channel, one.user_id)
    if not found:
        abort(404)
    return page("console_person.html", nav="leads", person=found, L=leads_mod, now=svc().clock(),
                expiry=svc().config.conversation_ttl, script=svc().script, rows=leads_mod.compare(found))
