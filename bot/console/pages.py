"""The console's pages (blueprint ``console``): login, overview, leads, teams, delivery.

Every page needs a logged-in session and every POST a CSRF token (:func:`bot.console.auth.guard_pages`).
A form's POST answers with a redirect to the page it came from (a reload never posts twice), and a
one-line notice carried in the session (Flask's ``flash``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
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
from bot.console import leads as leads_mod
from bot.console.teams import find_team, recent_quarters, team_view
from bot.console.texts import texts
from conversations.analytics import BUCKETS, LEAD_STATUSES, STATUSES
from conversations.errors import StoreUnavailable
from scoring import CHOICES, TIERS

OVERVIEW_DAYS = 30  # the overview's default range: the last 30 days
MAX_DAYS = 3 * 366  # the longest range it draws (a bar per day over years is no chart)


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
    """The nav's badge: consultations requested and not yet taken up (status "new")."""
    return leads_mod.analytics(svc()).open_consultations()


@dataclass(frozen=True)
class OverviewFilter:
    start: date | None
    end: date | None
    bucket: str
    channel: str | None
    error: str = ""

    def query(self) -> dict[str, str]:
        out = {"from": self.start.isoformat() if self.start else "", "to": self.end.isoformat() if self.end else "",
               "bucket": self.bucket, "channel": self.channel or ""}
        return {k: v for k, v in out.items() if v}


def _overview_filter() -> OverviewFilter:
    """The overview's dates (Japan time; the last 30 days by default), bucket and channel."""
    args = request.args
    bucket = args.get("bucket") or "day"
    channel = args.get("channel") or None
    try:
        start, end = fmt.day_range(args.get("from"), args.get("to"), svc().clock(), OVERVIEW_DAYS)
        if bucket not in BUCKETS or (channel is not None and channel not in leads_mod.CHANNELS):
            raise ValueError("filter")
        if start and end and (end - start).days > MAX_DAYS:
            raise ValueError("range")
    except ValueError as e:
        return OverviewFilter(None, None, "day", None, str(e) or "filter")
    return OverviewFilter(start, end, bucket, channel)


def _has_try() -> bool:
    return "console_try" in current_app.blueprints


def blueprint() -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static", static_url_path="/static")
    auth.guard_pages(bp, open_endpoints=frozenset({"console.login", "console.static"}))
    auth.secure_headers(bp)

    @bp.errorhandler(CSRFError)
    def csrf_failed(_e: CSRFError) -> tuple[str, int]:
        return render_template("console_error.html", t=texts(), title=texts()["csrf_title"],
                               body=texts()["csrf_body"]), 400

    @bp.errorhandler(404)
    def not_found(_e: Exception) -> tuple[str, int]:
        return render_template("console_error.html", t=texts(), title=texts()["not_found"], body=""), 404

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

    @bp.post("/logout")
    def logout() -> Any:
        auth.log_out()
        return redirect(url_for("console.login"))

    # ---- overview ---------------------------------------------------------------------------------

    @bp.get("/")
    def overview() -> Any:
        f = _overview_filter()
        a = leads_mod.analytics(svc())
        t = texts()
        script = svc().script
        if f.error:
            funnel, series = None, []
        else:
            assert f.start is not None and f.end is not None
            funnel = a.funnel(f.start, f.end, f.channel)
            series = a.series(f.start, f.end, f.bucket, f.channel)
        return page("console_overview.html", nav="overview", f=f, funnel=funnel, series=series,
                    followers=a.followers(), topics=[q.topic for q in script.questions],
                    tier_labels={k: v.label for k, v in script.tiers.items()}, error=t["bad_date"] if f.error else "",
                    channels=leads_mod.CHANNELS, buckets=BUCKETS)

    @bp.get("/charts/<name>.svg")
    def chart(name: str) -> Any:
        from bot import charts

        f = _overview_filter()
        if f.error or name not in ("tiers", "funnel", "answers"):
            abort(404)
        assert f.start is not None and f.end is not None
        a = leads_mod.analytics(svc())
        t = texts()
        labels = {k: v.label for k, v in svc().script.tiers.items()}
        if name == "tiers":
            rows = a.series(f.start, f.end, f.bucket, f.channel)
            return svg(charts.bars([r["label"] for r in rows],
                                   {labels.get(k, k): [r["tiers"][k] for r in rows] for k in TIERS},
                                   stacked=True, empty=t["none"],
                                   colors={labels.get(k, k): charts.TIER_COLORS[k] for k in TIERS}))
        funnel = a.funnel(f.start, f.end, f.channel)
        questions = funnel["questions"]
        names = [f"Q{q['q']}" for q in questions]
        if name == "funnel":
            return svg(charts.bars(names, {t["shown"]: [q["shown"] for q in questions],
                                           t["answered"]: [q["answered"] for q in questions]}, empty=t["none"]))
        topics = [f"Q{i + 1} {q.topic}" for i, q in enumerate(svc().script.questions)]
        return svg(charts.bars(topics, {x: [q["answers"][x] for q in questions] for x in CHOICES}, stacked=True,
                               horizontal=True, percent=True, empty=t["none"], size=(8.0, 4.2)))

    # ---- leads ------------------------------------------------------------------------------------

    @bp.get("/leads")
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

    @bp.get("/leads/<lead_id>")
    def lead(lead_id: str) -> Any:
        found = leads_mod.analytics(svc()).lead(lead_id)
        if found is None:
            abort(404)
        return page("console_lead.html", nav="leads", lead=found, L=leads_mod, now=svc().clock(),
                    expiry=svc().config.conversation_ttl, script=svc().script, statuses=STATUSES)

    @bp.post("/leads/<lead_id>/consult")
    def set_consult(lead_id: str) -> Any:
        a = leads_mod.analytics(svc())
        if a.lead(lead_id) is None:
            abort(404)
        status = request.form.get("status", "")
        ok = status in STATUSES and a.set_consult_status(lead_id, status, by="console", now=svc().clock())
        flash(texts()["status_saved" if ok else "status_not_saved"], "ok" if ok else "error")
        target = request.form.get("next", "")
        return redirect(target if target.startswith("/console/") and not target.startswith("//")
                        else url_for("console.lead", lead_id=lead_id))

    @bp.get("/people/<channel>/<user_id>")
    def person(channel: str, user_id: str) -> Any:
        found = leads_mod.analytics(svc()).person(channel, user_id)
        if not found:
            abort(404)
        return page("console_person.html", nav="leads", person=found, L=leads_mod, now=svc().clock(),
                    expiry=svc().config.conversation_ttl, script=svc().script, rows=leads_mod.compare(found))

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
        from bot.console.quota import read_quota, reply_unknown_counts

        s = svc()
        return page("console_delivery.html", nav="delivery", parked=s.outbox.parked(),
                    quota=read_quota(s.redis, s.line_quota, s.clock),
                    unknown=reply_unknown_counts(s.redis, s.clock()), unknown_policy=s.config.reply_unknown)

    @bp.post("/delivery/requeue")
    def requeue() -> Any:
        job_id = request.form.get("job", "")
        ok = svc().outbox.requeue(job_id)
        flash(texts()["requeued" if ok else "requeue_failed"], "ok" if ok else "error")
        return redirect(url_for("console.delivery"))

    return bp
