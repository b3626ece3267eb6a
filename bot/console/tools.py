"""For BI tools and scripts (blueprint ``console_tools``): ``/console/api/*`` (JSON) and
``/console/export/*`` (CSV). Opened by ``Authorization: Bearer <CRMBOT_CONSOLE_TOKEN>`` or a
logged-in console session (:func:`bot.console.auth.guard_tools`); read-only.

CSV files open in Excel on a Japanese PC: UTF-8 with a BOM, a header row, CRLF line ends. A text cell
that starts with ``= + - @`` (a name someone chose) gets a leading ``'`` so no spreadsheet runs it
as a formula.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from bot.console import auth, fmt, leads, nurture
from bot.console.figures_cache import figures
from bot.console.teams import all_reports
from bot.console.texts import texts
from conversations.analytics import Lead
from conversations.errors import StoreUnavailable

BOM = "\ufeff"
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def svc() -> Any:
    return current_app.extensions["crmbot"]


def cell(text: str) -> str:
    """A text cell safe from spreadsheet formula injection."""
    return "'" + text if text.startswith(_FORMULA) else text


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(header)
    out.writerows(rows)
    return (BOM + buf.getvalue()).encode("utf-8")


def csv_response(name: str, data: bytes) -> Response:
    return Response(data, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store",
    })


def kpi_csv(locale: str) -> bytes:
    """One row per team and reported quarter: the team, the quarter, who reported and when, the overall
    and five area scores, then every indicator's figure (empty: not reported), in catalog order."""
    from conversations.kpi_catalog import load_catalog
    from conversations.teams import TeamStore

    t = texts(locale)
    catalog = load_catalog()
    header = [t["workspace"], t["slack_channel"], t["team"], t["quarter"], t["reported_by"], t["reported_at"],
              t["overall"],
              *(catalog.name(k, locale) for k in catalog.area_keys),
              *(f"{catalog.name(i.key, locale)} ({i.unit})" for i in catalog.indicators)]
    rows = []
    for team, row in all_reports(TeamStore(svc().redis), catalog):
        assert row.report is not None
        rows.append([team.ref.workspace, team.ref.channel, cell(team.name), str(row.quarter), row.report.by,
                     fmt.when(row.report.at), fmt.score(row.overall),
                     *(fmt.score(row.area(k)) for k in catalog.area_keys),
                     *(fmt.number(row.report.values.get(i.key)) for i in catalog.indicators)])
    return csv_bytes(header, rows)


def _bad_request(why: str) -> Response:
    return Response(json.dumps({"error": why}) + "\n", 400, mimetype="application/json")


def _funnel(start: date | None, end: date | None, channel: str | None, source: str | None, variant: str | None,
            version: str | None) -> dict[str, Any]:
    """The funnel's figures, kept a few seconds per query (bot/console/figures_cache.py)."""
    return figures(("funnel", start, end, channel, source, variant, version),
                   lambda: leads.analytics(svc()).funnel(start, end, channel, source, variant=variant, version=version))


def blueprint() -> Blueprint:
    bp = Blueprint("console_tools", __name__, url_prefix="/console")
    auth.guard_tools(bp)
    auth.secure_headers(bp)

    @bp.errorhandler(StoreUnavailable)
    def unavailable(_e: StoreUnavailable) -> Response:
        return Response('{"error": "store unavailable"}\n', 503, mimetype="application/json")

    @bp.get("/api/funnel")
    def funnel() -> Response:
        """The funnel of diagnoses started from ``from`` to ``to`` (Japan-time dates, both optional),
        every channel but the try-it page's, or ``channel=line|slack``; ``source=NAME``: only the leads from
        that source (「診断 NAME」), ``variant=EXPERIMENT:VARIANT`` only the diagnoses assigned that content
        experiment's variant, ``version=V`` only those that ran content version V (at most one of the three):
        exactly :meth:`conversations.analytics.Analytics.funnel`, and
        ``consultations``, the leads that first asked for one in that range by their status now, each counted
        once (``requested``, ``booked``, ``attended``, ``no_show``, ``cancelled``:
        :meth:`conversations.booking.Bookings.consultation_counts`; with a source, :func:`consultations.counts`;
        a variant or a version does not narrow them). The funnel's figures may be a few seconds old
        (:mod:`bot.console.figures_cache`); the consultations' counts are read each time."""
        try:
            start, end = fmt.day_range(request.args.get("from"), request.args.get("to"), 0, None)
        except ValueError:
            return _bad_request("from and to are dates, YYYY-MM-DD, from not after to")
        channel = request.args.get("channel") or None
        if channel is not None and channel not in leads.CHANNELS:
            return _bad_request("channel is line or slack")
        try:
            source = leads.pick_source(request.args)
        except ValueError:
            return _bad_request("source is a source name: letters, digits, - and _")
        try:
            variant = leads.pick_segment(request.args, "variant")
            version = leads.pick_segment(request.args, "version")
        except ValueError:
            return _bad_request("variant is EXPERIMENT:VARIANT, version a version's name")
        if sum(x is not None for x in (source, variant, version)) > 1:
            return _bad_request("give one of source, variant and version")
        from bot.console.consultations import counts

        found = _funnel(start, end, channel, source, variant, version)
        return jsonify({**found, "consultations": counts(svc(), start, end, channel, source)})

    bp.add_url_rule("/api/nurture", "nurture", nurture.api, methods=["GET"])

    @bp.get("/export/leads.csv")
    def export_leads() -> Response:
        """One row per diagnosis, the leads page's columns, then the source and the qualification answers,
        filtered, searched and sorted as the page (``tier``, ``progress``, ``consult``, ``from``, ``to``,
        ``channel``, ``source``, ``q``, ``sort``), newest first by default (then streamed in chunks; searched or
        sorted otherwise, the list is read whole first)."""
        f = leads.Filters.parse(request.args)
        if f.error:
            return _bad_request(f"bad filter: {f.error}")
        s = svc()
        t = texts()
        now, expiry = s.clock(), s.config.conversation_ttl
        found: Iterable[Lead] = (leads.query(s).page(f.as_query(), offset=0, limit=sys.maxsize).leads
                                 if f.search or f.sort != "date" else leads.analytics(s).iter_leads(**f.kwargs()))
        rows = (leads.csv_row(lead, t, s.script, now, expiry) for lead in found)
        return csv_response("leads.csv", csv_bytes(leads.csv_header(t, s.script), rows))

    @bp.get("/export/audit.csv")
    def export_audit() -> Response:
        """The audit log, newest first (``who`` and ``action`` filter as the audit page): when (Japan time),
        who, action, record, detail."""
        from bot.console import audit

        t = texts()
        entries = audit.every(svc().redis, who=request.args.get("who", ""), action=request.args.get("action", ""))
        rows = ([fmt.when(e.at), cell(e.who), e.action, cell(e.target), cell(e.detail)] for e in entries)
        header = [t["audit_when"], t["audit_who"], t["audit_action"], t["audit_target"], t["audit_detail"]]
        return csv_response("audit.csv", csv_bytes(header, rows))

    @bp.get("/export/kpi.csv")
    def export_kpi() -> Response:
        return csv_response("kpi.csv", kpi_csv(svc().config.locale))

    return bp
