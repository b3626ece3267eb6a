"""``/console/`` (followers, the funnel, tiers over time, over a date range in Japan time and a channel)
and its charts, ``/console/charts/<name>.svg``."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot import demo
from bot.console import audit, auth, fmt
from bot.console import leads as leads_mod
from bot.console.consultations import counts
from bot.console.figures_cache import figures
from bot.console.routes.common import page, svc, svg
from bot.console.texts import texts
from conversations.analytics import BUCKETS
from scoring import CHOICES, TIERS

OVERVIEW_DAYS = 30  # the overview's default range: the last 30 days
MAX_DAYS = 3 * 366  # the longest range it draws (a bar per day over years is no chart)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/", "overview", overview, methods=["GET"])
    bp.add_url_rule("/demo", "demo_load", demo_load, methods=["POST"])
    bp.add_url_rule("/demo/remove", "demo_remove", demo_remove, methods=["POST"])
    bp.add_url_rule("/charts/<name>.svg", "chart", chart, methods=["GET"])


@dataclass(frozen=True)
class OverviewFilter:
    start: date | None
    end: date | None
    bucket: str
    channel: str | None
    error: str = ""
    source: str | None = None  # only the leads from this source (「診断 NAME」)

    def query(self) -> dict[str, str]:
        out = {"from": self.start.isoformat() if self.start else "", "to": self.end.isoformat() if self.end else "",
               "bucket": self.bucket, "channel": self.channel or "", "source": self.source or ""}
        return {k: v for k, v in out.items() if v}


def overview_filter() -> OverviewFilter:
    """The overview's dates (Japan time; the last 30 days by default), bucket, channel and source."""
    args = request.args
    bucket = args.get("bucket") or "day"
    channel = args.get("channel") or None
    try:
        start, end = fmt.day_range(args.get("from"), args.get("to"), svc().clock(), OVERVIEW_DAYS)
        if bucket not in BUCKETS or (channel is not None and channel not in leads_mod.CHANNELS):
            raise ValueError("filter")
        if start and end and (end - start).days > MAX_DAYS:
            raise ValueError("range")
        source = leads_mod.pick_source(args)
    except ValueError as e:
        return OverviewFilter(None, None, "day", None, str(e) or "filter")
    return OverviewFilter(start, end, bucket, channel, source=source)


def overview() -> Any:
    f = overview_filter()
    a = leads_mod.analytics(svc())
    t = texts()
    script = svc().script
    drawn: dict[str, str] = {}
    if f.error:
        funnel, series = None, []
    else:
        assert f.start is not None and f.end is not None
        funnel = funnel_of(f)
        series = series_of(f)
        drawn = {name: _data_uri(chart_svg(name, f)) for name in CHARTS}  # the same figures: no more reads
    followers, channels = figures(("followers",), lambda: (a.followers(), a.channels()))
    empty = followers == 0 and not channels  # nothing counted yet, ever: say how to see something
    consults = None if f.error else counts(svc(), f.start, f.end, f.channel, f.source)
    return page("console_overview.html", nav="overview", f=f, funnel=funnel, series=series, empty=empty, charts=drawn,
                demo_loaded=demo.is_loaded(svc().redis), consults=consults,
                followers=followers, topics=[q.topic for q in script.questions],
                tier_labels={k: v.label for k, v in script.tiers.items()}, error=t["bad_date"] if f.error else "",
                channels=leads_mod.CHANNELS, buckets=BUCKETS)


def chart(name: str) -> Any:
    """One chart alone (a link to it; the overview draws its charts in the page)."""
    f = overview_filter()
    if f.error or name not in CHARTS:
        abort(404)
    return svg(chart_svg(name, f))


CHARTS = ("tiers", "funnel", "answers")


def chart_svg(name: str, f: OverviewFilter) -> bytes:
    """A chart of the overview (SVG), from the request's figures (read once per request)."""
    from bot import charts

    assert f.start is not None and f.end is not None
    t = texts()
    labels = {k: v.label for k, v in svc().script.tiers.items()}
    if name == "tiers":
        rows = series_of(f)
        return charts.bars([r["label"] for r in rows],
                           {labels.get(k, k): [r["tiers"][k] for r in rows] for k in TIERS},
                           stacked=True, empty=t["none"],
                           colors={labels.get(k, k): charts.TIER_COLORS[k] for k in TIERS})
    funnel = funnel_of(f)
    questions = funnel["questions"]
    names = [f"Q{q['q']}" for q in questions]
    if name == "funnel":
        return charts.bars(names, {t["shown"]: [q["shown"] for q in questions],
                                   t["answered"]: [q["answered"] for q in questions]}, empty=t["none"])
    topics = [f"Q{i + 1} {q.topic}" for i, q in enumerate(svc().script.questions)]
    return charts.bars(topics, {x: [q["answers"][x] for q in questions] for x in CHOICES}, stacked=True,
                       horizontal=True, percent=True, empty=t["none"], size=(8.0, 4.2))


def funnel_of(f: OverviewFilter) -> dict[str, Any]:
    """The funnel of ``f``, kept a few seconds per query (the funnel API's too: bot/console/figures_cache.py)."""
    assert f.start is not None and f.end is not None
    start, end = f.start, f.end
    return figures(("funnel", start, end, f.channel, f.source, None, None),
                   lambda: leads_mod.analytics(svc()).funnel(start, end, f.channel, f.source))


def series_of(f: OverviewFilter) -> list[dict[str, Any]]:
    """The tiers over time of ``f``, kept as :func:`funnel_of`."""
    assert f.start is not None and f.end is not None
    start, end = f.start, f.end
    return figures(("series", start, end, f.bucket, f.channel, f.source),
                   lambda: leads_mod.analytics(svc()).series(start, end, f.bucket, f.channel, f.source))


def _data_uri(data: bytes) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(data).decode("ascii")


def demo_load() -> Any:
    """Load the demo sample (bot/demo.py), as ``crmbot demo`` does."""
    if not auth.may_change():
        abort(403)
    s = svc()
    loaded = demo.load(s.redis, s.bot.machine, s.clock(), expiry=s.config.conversation_ttl)
    audit.record(s.redis, who=auth.operator_name(), action="demo.load", target="demo", detail=str(loaded.leads),
                 now=s.clock())
    flash(texts()["demo_loaded"], "ok")
    return redirect(url_for("console.overview"))


def demo_remove() -> Any:
    """Remove the demo sample: every figure is as it was before it was loaded."""
    if not auth.may_change():
        abort(403)
    s = svc()
    gone = demo.remove(s.redis)
    audit.record(s.redis, who=auth.operator_name(), action="demo.remove", target="demo", detail=str(gone),
                 now=s.clock())
    flash(texts()["demo_removed"], "ok")
    return redirect(url_for("console.overview"))
