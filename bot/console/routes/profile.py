"""``/console/profile``: the logged-in operator's own account: their password, their second factor (TOTP:
enrol with a QR code or the secret typed in, confirmed by a first code; turn it off unless an admin
requires it) and their sessions (when, where from; revoke any, this one included). A viewer may use it too.
Every change is written to the audit log."""

from __future__ import annotations

from typing import Any

import segno
from flask import Blueprint, flash, redirect, request, session, url_for

from bot.console import audit, auth, keys
from bot.console.operators import Operator, OperatorError, new_totp_secret, totp_step_of, totp_uri
from bot.console.routes.common import page, svc
from bot.console.texts import texts

PENDING = "totp_pending"  # the secret being enrolled, kept in the (server-side) session until confirmed


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/profile", "profile", profile, methods=["GET"])
    bp.add_url_rule("/profile/password", "profile_password", profile_password, methods=["POST"])
    bp.add_url_rule("/profile/totp", "profile_totp", profile_totp, methods=["POST"])
    bp.add_url_rule("/profile/totp/off", "profile_totp_off", profile_totp_off, methods=["POST"])
    bp.add_url_rule("/profile/sessions/revoke", "profile_revoke", profile_revoke, methods=["POST"])


def _me() -> Operator | None:
    return auth.current_operator()


def _record(op: Operator, action: str, detail: str = "") -> None:
    audit.record(svc().redis, who=op.name, action=action, target=f"operator:{op.id}", detail=detail,
                 now=svc().clock())


def _current_digest() -> str:
    sid = getattr(session, "sid", None)
    return keys.session_digest(sid) if sid else ""


def profile() -> Any:
    op = _me()
    if op is None:  # the shared account has no profile: its task is the first admin
        return redirect(url_for("console.operators"))
    a = auth.access()
    enrol = qr = ""
    if not op.has_totp:
        enrol = str(session.get(PENDING) or "")
        if not enrol:
            enrol = session[PENDING] = new_totp_secret()
        uri = totp_uri(enrol, op.email, texts()["title"])
        qr = segno.make(uri, error="m").svg_data_uri(scale=4, border=2)
    return page("console_profile.html", nav="profile", me=op, enrol=enrol, qr=qr,
                sessions=a.sessions.of_operator(op.id), current=_current_digest(),
                must_enrol=auth.needs_enrolment(auth.current_actor()), totp_required=a.operators.totp_required())


def profile_password() -> Any:
    op = _me()
    t = texts()
    if op is None:
        return redirect(url_for("console.operators"))
    a = auth.access()
    f = request.form
    if a.operators.check_password(op.email, f.get("current", "")) is None:
        flash(t["password_wrong"], "error")
        return redirect(url_for("console.profile"))
    if f.get("new", "") != f.get("again", ""):
        flash(t["password_mismatch"], "error")
        return redirect(url_for("console.profile"))
    try:
        a.operators.set_password(op.id, f.get("new", ""))
    except OperatorError as e:
        flash(t[f"operator_error_{e.reason}"], "error")
        return redirect(url_for("console.profile"))
    current = _current_digest()  # every other session of theirs ends: whoever knew the old password is out
    for other in a.sessions.of_operator(op.id):
        if other.digest != current:
            a.sessions.revoke(op.id, other.digest)
    _record(op, "operator.password")
    flash(t["password_changed"], "ok")
    return redirect(url_for("console.profile"))


def profile_totp() -> Any:
    """Confirm the enrolment: the pending secret's current code turns the second factor on."""
    op = _me()
    t = texts()
    if op is None:
        return redirect(url_for("console.operators"))
    secret = str(session.get(PENDING) or "")
    step = totp_step_of(secret, request.form.get("code", ""), svc().clock()) if not op.has_totp else None
    if step is None:
        flash(t["totp_wrong"], "error")
        return redirect(url_for("console.profile"))
    auth.access().operators.set_totp(op.id, secret, step)  # that code is used up: it cannot log in again
    session.pop(PENDING, None)
    _record(op, "operator.totp_on")
    flash(t["totp_on"], "ok")
    return redirect(url_for("console.profile"))


def profile_totp_off() -> Any:
    op = _me()
    t = texts()
    if op is None:
        return redirect(url_for("console.operators"))
    a = auth.access()
    if a.operators.totp_required():
        flash(t["totp_cannot_off"], "error")
        return redirect(url_for("console.profile"))
    if not op.has_totp or not a.operators.use_totp(op, request.form.get("code", "")):
        flash(t["totp_wrong"], "error")
        return redirect(url_for("console.profile"))
    a.operators.set_totp(op.id, "")
    _record(op, "operator.totp_off")
    flash(t["totp_off"], "ok")
    return redirect(url_for("console.profile"))


def profile_revoke() -> Any:
    op = _me()
    if op is None:
        return redirect(url_for("console.operators"))
    digest = request.form.get("session", "")
    ok = auth.access().sessions.revoke(op.id, digest)
    if ok:
        _record(op, "session.revoke")
    if ok and digest == _current_digest():
        return redirect(url_for("console.login"))
    flash(texts()["session_revoked" if ok else "session_not_found"], "ok" if ok else "error")
    return redirect(url_for("console.profile"))
