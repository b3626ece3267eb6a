"""``/console/operators`` (admins only): every operator (role, second factor, sessions), the form that adds
one, changing a role, resetting a second factor, removing an operator, revoking a session, requiring TOTP
for everyone. Before any operator exists, the shared account sees only the form that makes the first admin,
and is logged in as that admin once it is made. Every change is written to the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console.operators import ROLES, Operator, OperatorError
from bot.console.routes.common import page, svc
from bot.console.texts import texts


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/operators", "operators", operators, methods=["GET"])
    bp.add_url_rule("/operators/new", "operator_create", operator_create, methods=["POST"])
    bp.add_url_rule("/operators/<operator_id>", "operator_update", operator_update, methods=["POST"])
    bp.add_url_rule("/operators/<operator_id>/delete", "operator_delete", operator_delete, methods=["POST"])
    bp.add_url_rule("/operators/<operator_id>/revoke", "operator_revoke", operator_revoke, methods=["POST"])
    bp.add_url_rule("/operators/totp", "operators_totp", operators_totp, methods=["POST"])


def target_of(op: Operator) -> str:
    return f"operator:{op.id}"


def record(action: str, target: str, detail: str = "") -> None:
    audit.record(svc().redis, who=auth.operator_name(), action=action, target=target, detail=detail,
                 now=svc().clock())


def operators() -> Any:
    a = auth.access()
    found = a.operators.all()
    sessions = {op.id: a.sessions.of_operator(op.id) for op in found}
    return page("console_operators.html", nav="operators", operators=found, sessions=sessions, roles=ROLES,
                first=not found, totp_required=a.operators.totp_required(),
                me=auth.current_operator())


def operator_create() -> Any:
    a = auth.access()
    t = texts()
    first = not a.operators.any()
    f = request.form
    role = "admin" if first else f.get("role", "")
    try:
        op = a.operators.create(f.get("email", ""), f.get("name", ""), role, f.get("password", ""), first=first)
    except OperatorError as e:
        flash(t[f"operator_error_{e.reason}"], "error")
        return redirect(url_for("console.operators"))
    record("operator.create", target_of(op), f"{op.name} ({op.role})")
    if first:  # the shared account's last task: its holder carries on as the first admin
        auth.log_in(op)
        record("login", "console")
        flash(t["operator_first_made"], "ok")
        return redirect(url_for("console.profile"))
    flash(t["operator_made"].format(name=op.name), "ok")
    return redirect(url_for("console.operators"))


def _found(operator_id: str) -> Operator:
    op = auth.access().operators.get(operator_id)
    if op is None:
        abort(404)
    return op


def operator_update(operator_id: str) -> Any:
    """Change a role (``role``) or remove a second factor (``reset_totp=yes``: a lost phone)."""
    a = auth.access()
    t = texts()
    op = _found(operator_id)
    try:
        if request.form.get("reset_totp") == "yes":
            a.operators.set_totp(op.id, "")
            record("operator.totp_reset", target_of(op), op.name)
        else:
            role = request.form.get("role", "")
            if role != op.role:
                a.operators.set_role(op.id, role)
                record("operator.role", target_of(op), f"{op.name}: {op.role} → {role}")
    except OperatorError as e:
        flash(t[f"operator_error_{e.reason}"], "error")
        return redirect(url_for("console.operators"))
    flash(t["operator_saved"].format(name=op.name), "ok")
    return redirect(url_for("console.operators"))


def operator_delete(operator_id: str) -> Any:
    a = auth.access()
    t = texts()
    op = _found(operator_id)
    if request.form.get("confirm") != "yes":
        flash(t["operator_delete_unconfirmed"], "error")
        return redirect(url_for("console.operators"))
    try:
        a.sessions.end_digests(a.operators.delete(op))
    except OperatorError as e:
        flash(t[f"operator_error_{e.reason}"], "error")
        return redirect(url_for("console.operators"))
    record("operator.delete", target_of(op), op.name)
    flash(t["operator_deleted"].format(name=op.name), "ok")
    return redirect(url_for("console.operators"))


def operator_revoke(operator_id: str) -> Any:
    a = auth.access()
    op = _found(operator_id)
    ok = a.sessions.revoke(op.id, request.form.get("session", ""))
    if ok:
        record("session.revoke", target_of(op), op.name)
    flash(texts()["session_revoked" if ok else "session_not_found"], "ok" if ok else "error")
    return redirect(url_for("console.operators"))


def operators_totp() -> Any:
    a = auth.access()
    required = request.form.get("required") == "yes"
    a.operators.require_totp(required)
    record("settings.totp_required", "console", "on" if required else "off")
    flash(texts()["totp_required_on" if required else "totp_required_off"], "ok")
    return redirect(url_for("console.operators"))
