"""``/console/login`` (an operator's e-mail, password and, when they enrolled or an admin requires it, TOTP
code; before any operator exists the shared password, or the one-time link; throttled) and
``/console/logout``. Every login and logout is written to the audit log."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from bot.console import audit, auth
from bot.console.operators import Operator
from bot.console.routes.common import svc
from bot.console.texts import texts


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])


def _form(t: Any, target: str, error: str = "", status: int = 200) -> tuple[str, int]:
    shared = not auth.access().operators.any()
    return render_template("console_login.html", t=t, error=error, next=target, shared=shared), status


def _record(who: str, action: str, detail: str = "") -> None:
    audit.record(svc().redis, who=who, action=action, target="console", detail=detail, now=svc().clock())


def login() -> Any:
    a = auth.access()
    t = texts()
    who = auth.client_address()
    target = auth.safe_next(request.values.get("next"))
    token = request.args.get("token", "") if request.method == "GET" else ""
    if not token and request.method == "GET":
        if auth.logged_in():
            return redirect(target)
        return _form(t, target)
    email = request.form.get("email", "").strip()
    account = email or auth.ACCOUNT
    wait = a.throttle.wait(who, account)
    if wait > 0:
        return _login_refused(t, target, wait)
    if token:
        return _link_login(t, who, token, target)
    if a.operators.any():
        op = _check_operator(email, request.form.get("password", ""), request.form.get("code", ""))
        if op is not None:
            a.throttle.succeeded(who, account)
            auth.log_in(op)
            _record(op.name, "login")
            return redirect(target)
        wait = a.throttle.failed(who, account)  # not in the audit log: a storm must not push real entries out
        if wait > 0:
            return _login_refused(t, target, wait)
        return _form(t, target, t["login_wrong_account"], 401)
    password = request.form.get("password", "")
    assert a.password is not None  # the guard answered 503 otherwise
    if password and auth.same_secret(password, a.password):
        a.throttle.succeeded(who, account)
        auth.log_in()
        _record(auth.ACCOUNT, "login")
        return redirect(target)
    wait = a.throttle.failed(who, account)
    if wait > 0:
        return _login_refused(t, target, wait)
    return _form(t, target, t["login_wrong"], 401)


def _check_operator(email: str, password: str, code: str) -> Operator | None:
    """The operator these are the credentials of: the password, and the TOTP code when they enrolled."""
    store = auth.access().operators
    op = store.check_password(email, password) if email and password else None
    if op is None:
        return None
    if op.has_totp and not store.use_totp(op, code):
        return None
    return op


def _link_login(t: Any, who: str, token: str, target: str) -> Any:
    """The one-time link: the shared account, while no operator exists (the first admin is made with it)."""
    a = auth.access()
    if a.operators.any():
        auth.use_login_token(a.redis, token)  # used up either way
        return _form(t, target, t["login_link_closed"], 401)
    if auth.use_login_token(a.redis, token):
        a.throttle.succeeded(who, auth.ACCOUNT)
        auth.log_in()
        _record(auth.ACCOUNT, "login", "link")
        return redirect(target)
    a.throttle.failed(who, auth.ACCOUNT)
    return _form(t, target, t["login_link_used"], 401)


def _login_refused(t: Any, target: str, wait: float) -> tuple[str, int, dict[str, str]]:
    seconds = max(1, math.ceil(wait))
    body, _ = _form(t, target, t["login_wait"].format(seconds=seconds))
    return body, 429, {"Retry-After": str(seconds)}


def logout() -> Any:
    name = auth.operator_name()
    auth.log_out()
    _record(name, "logout")
    return redirect(url_for("console.login"))
