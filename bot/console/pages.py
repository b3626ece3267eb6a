"""The console's pages (blueprint ``console``): login, overview, leads, teams, delivery.

Every page needs a logged-in session and every POST a CSRF token (:func:`bot.console.auth.guard_pages`).
A form's POST answers with a redirect to the page it came from (a reload never posts twice), and a
one-line notice carried in the session (Flask's ``flash``).
"""

from __future__ import annotations

import math
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import CSRFError

from bot.console import auth, fmt
from bot.console.teams import find_team, recent_quarters, team_view
from bot.console.texts import texts
from conversations.errors import StoreUnavailable


def svc() -> Any:
    return current_app.extensions["crmbot"]


def _catalog() -> Any:
    from conversations.kpi_catalog import load_catalog

    return load_catalog()


def _teams() -> Any:
    from conversations.teams import TeamStore

    store = g.get("crmbot_teams")
    if store is None:
        store = g.crmbot_teams = TeamStore(svc().redis)
    return store


def svg(data: bytes) -> Response:
    return Response(data, mimetype="image/svg+xml", headers={"Cache-Control": "private, max-age=60"})


def page(template: str, **context: Any) -> str:
    """Render a console page with what every page shows (texts, the nav, the open-consultation badge)."""
    return render_template(template, t=texts(), fmt=fmt, open_consult=open_consultations(),
                           has_try=_has_try(), **context)


def open_consultations() -> int:
    return 0


def _has_try() -> bool:
    return "console_try" in current_app.blueprints


def blueprint() -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static", static_url_path="/static")
    auth.guard_pages(bp, open_endpoints=frozenset({"console.login", "console.static"}))

    @bp.errorhandler(CSRFError)
    def csrf_failed(_e: CSRFError) -> tuple[str, int]:
        return render_template("console_error.html", t=texts(), title=texts()["csrf_title"],
                               body=texts()["csrf_body"]), 400

    @bp.errorhandler(StoreUnavailable)
    def unavailable(_e: StoreUnavailable) -> tuple[str, int]:
        return render_template("console_error.html", t=texts(), title=texts()["unavailable_title"],
                               body=texts()["unavailable_body"]), 503

    # ---- login ------------------------------------------------------------------------------------

    @bp.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        a = auth.access()
        t = texts()
        who = auth.client_address()
        target = auth.safe_next(request.values.get("next"))
        token = request.args.get("token", "") if request.method == "GET" else ""
        if not token and request.method == "GET":
            if auth.logged_in():
                return redirect(target)
            return render_template("console_login.html", t=t, error="", next=target)
        wait = a.throttle.wait(who)
        if wait > 0:
            return _login_refused(t, target, wait)
        if token:
            if auth.use_login_token(a.redis, token):
                a.throttle.succeeded(who)
                auth.log_in()
                return redirect(target)
            a.throttle.failed(who)
            return render_template("console_login.html", t=t, error=t["login_link_used"], next=target), 401
        password = request.form.get("password", "")
        assert a.password is not None  # the guard answered 503 otherwise
        if password and auth.same_secret(password, a.password):
            a.throttle.succeeded(who)
            auth.log_in()
            return redirect(target)
        wait = a.throttle.failed(who)
        if wait > 0:
            return _login_refused(t, target, wait)
        return render_template("console_login.html", t=t, error=t["login_wrong"], next=target), 401

    def _login_refused(t: Any, target: str, wait: float) -> tuple[str, int, dict[str, str]]:
        seconds = max(1, math.ceil(wait))
        return (render_template("console_login.html", t=t, error=t["login_wait"].format(seconds=seconds), next=target),
                429, {"Retry-After": str(seconds)})

    @bp.post("/logout")
    def logout() -> Any:
        auth.log_out()
        return redirect(url_for("console.login"))

    # ---- overview ---------------------------------------------------------------------------------

    @bp.get("/")
    def overview() -> Any:
        return page("console_overview.html", nav="overview")

    @bp.get("/leads")
    def leads() -> Any:
        return page("console_overview.html", nav="leads")

    # ---- teams ------------------------------------------------------------------------------------

    @bp.get("/teams")
    def teams() -> Any:
        now = svc().clock()
        catalog = _catalog()
        store = _teams()
        quarters = recent_quarters(now, 4)
        views = [team_view(store, catalog, team, now) for team in sorted(store.all_teams(),
                                                                          key=lambda t: (t.name, t.ref.id))]
        return page("console_teams.html", nav="teams", views=views, quarters=quarters, catalog=catalog,
                    locale=svc().config.locale)

    @bp.get("/teams/<team_id>")
    def team(team_id: str) -> Any:
        found = find_team(_teams(), team_id)
        if found is None:
            abort(404)
        catalog = _catalog()
        view = team_view(_teams(), catalog, found, svc().clock())
        return page("console_team.html", nav="teams", view=view, catalog=catalog, locale=svc().config.locale)

    @bp.get("/teams/<team_id>/trend.svg")
    def team_trend(team_id: str) -> Any:
        from bot import charts

        found = find_team(_teams(), team_id)
        if found is None:
            abort(404)
        catalog = _catalog()
        locale = svc().config.locale
        view = team_view(_teams(), catalog, found, svc().clock())
        series = {catalog.name(key, locale): [row.area(key) for row in view.rows] for key in catalog.area_keys}
        return svg(charts.lines([str(row.quarter) for row in view.rows], series, y_range=(0, 10.5),
                                empty=texts()["not_reported"]))

    # ---- delivery ---------------------------------------------------------------------------------

    @bp.get("/delivery")
    def delivery() -> Any:
        from bot.console.quota import read_quota

        s = svc()
        return page("console_delivery.html", nav="delivery", parked=s.outbox.parked(),
                    quota=read_quota(s.redis, s.config, s.clock))

    @bp.post("/delivery/requeue")
    def requeue() -> Any:
        job_id = request.form.get("job", "")
        ok = svc().outbox.requeue(job_id)
        flash(texts()["requeued" if ok else "requeue_failed"], "ok" if ok else "error")
        return redirect(url_for("console.delivery"))

    return bp
