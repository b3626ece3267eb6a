"""The web app's probes and metrics: ``/healthz`` (liveness), ``/readyz`` (readiness), ``/metrics``.

``GET /healthz``: 200 while Redis answers and can persist; 503 otherwise, saying which. One round trip
(``INFO persistence``, which proves Redis answers too): "redis unavailable" when it does not answer,
"redis: cannot persist (disk full?): aof_last_write_status=err" when it cannot write its files and so
refuses every write (:mod:`bot.persistence`). (It depends on Redis, as it always has: a probe that
restarts the process on a 503 restarts it while Redis is away, which does no harm and no good. The
container's HEALTHCHECK asks ``/readyz``.)

``GET /readyz``: 200 ``ready`` only when this process can do its work: Redis answers and persists (the
same round trip), the diagnosis script (content) is loaded, and the KPI catalog too where Slack is
configured (the KPI method's only channel). Else 503 with every reason, one a line, in plain text.
Content and catalog are loaded, and checked, before the app serves (a bad file stops start-up), so
today only Redis turns it 503; the check holds the app to it.

``GET /metrics``: Prometheus's text format (:mod:`bot.metrics`): this process's counters and the
system's facts read from Redis. With ``CRMBOT_METRICS_TOKEN`` set, only for ``Authorization: Bearer
<token>`` (401 otherwise); without it, open to anyone who reaches the app: block it at the proxy.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, request

from bot import metrics
from bot.persistence import SHORT, persistence_problem
from conversations.errors import StoreUnavailable

REDIS_DOWN = "redis unavailable"


def redis_problem(client: Any) -> str | None:
    """Why Redis cannot serve us now (does not answer, cannot persist), or None."""
    try:
        problem = persistence_problem(client)
    except (StoreUnavailable, OSError):
        return REDIS_DOWN
    return f"{SHORT}: {problem}" if problem else None


def not_ready(svc: Any) -> list[str]:
    """Every reason the app is not ready (none: ready)."""
    reasons = []
    if (problem := redis_problem(svc.redis)) is not None:
        reasons.append(problem)
    script = getattr(svc, "script", None)
    if script is None or not script.questions:
        reasons.append("content: the diagnosis script is not loaded")
    if svc.config.slack_enabled and (getattr(svc, "kpi", None) is None or not svc.kpi.catalog.areas):
        reasons.append("kpi catalog: not loaded (Slack is configured)")
    return reasons


def blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> tuple[str, int]:
        problem = redis_problem(current_app.extensions["crmbot"].redis)
        return (problem, 503) if problem else ("ok", 200)

    @bp.get("/readyz")
    def readyz() -> Response:
        reasons = not_ready(current_app.extensions["crmbot"])
        if reasons:
            return Response("\n".join(reasons) + "\n", 503, mimetype="text/plain")
        return Response("ready\n", 200, mimetype="text/plain")

    @bp.get("/metrics")
    def metrics_view() -> Response:
        svc = current_app.extensions["crmbot"]
        if not metrics.authorized(request.headers.get("Authorization"), svc.config.metrics_token):
            return Response(metrics.UNAUTHORIZED, 401, {"WWW-Authenticate": 'Bearer realm="crmbot metrics"'},
                            mimetype="text/plain")
        body = metrics.exposition(metrics.SystemCollector(svc.redis, svc.clock))
        return Response(body, 200, {"Content-Type": metrics.CONTENT_TYPE, "Cache-Control": "no-store"})

    return bp
