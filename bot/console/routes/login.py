"""``/console/login`` (a password, or the one-time link ``crmbot serve`` prints; throttled) and
``/console/logout``."""

from __future__ import annotations

import math
from typing import Any

from flask import Blueprint, redirect, render_template, request, url_for

from bot.console import auth
from bot.console.texts import texts


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/login", "login", login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", "logout", logout, methods=["POST"])


def login() -> Any:
    a = auth.access()
    t = texts()
    who = auth.client_address()
    account = auth.ACCOUNT  # one shared account today; the e-mail given once operators have their own
    target = auth.safe_next(request.values.get("next"))
    token = request.args.get("token", "") if request.method == "GET" else ""
    if not token and request.method == "GET":
        if auth.logged_in():
            return redirect(target)
        return render_template("console_login.html", t=t, error="", next=target)
    wait = a.throttle.wait(who, account)
    if wait > 0:
        return _login_refused(t, target, wait)
    if token:
        if auth.use_login_token(a.redis, token):
            a.throttle.succeeded(who, account)
            auth.log_in()
            return redirect(target)
        a.throttle.failed(who, account)
        return render_template("console_login.html", t=t, error=t["login_link_used"], next=target), 401
    password = request.form.get("password", "")
    assert a.password is not None  # the guard answered 503 otherwise
    if password and auth.same_secret(password, a.password):
        a.throttle.succeeded(who, account)
        auth.log_in()
        return redirect(target)
    wait = a.throttle.failed(who, account)
    if wait > 0:
        return _login_refused(t, target, wait)
    return render_template("console_login.html", t=t, error=t["login_wrong"], next=target), 401


def _login_refused(t: Any, target: str, wait: float) -> tuple[str, int, dict[str, str]]:
    seconds = max(1, math.ceil(wait))
    return (render_template("console_login.html", t=t, error=t["login_wait"].format(seconds=seconds), next=target),
            429, {"Retry-After": str(seconds)})


def logout() -> Any:
    auth.log_out()
    return redirect(url_for("console.login"))
