"""``/console/webhooks``: the client's webhook endpoints (bot/webhooks.py). Adding one shows its signing secret
once, on the page that answers the form (never stored in the session, never shown again); each endpoint is
listed with its events and its last answers, and can be deleted. Every change is refused (403) to an operator
who may not change anything, and written to the audit log (never the secret).

``/console/api/webhooks`` does the same for scripts (registered on the console's API blueprint, so
``Authorization: Bearer <CRMBOT_CONSOLE_TOKEN>`` or a session with its CSRF token)::

    GET    /console/api/webhooks         {"endpoints": [{"id", "url", "events", "with_name", "created", "by",
                                          "last": [{"at", "event", "id", "status", "detail"} ...]} ...]}
    POST   /console/api/webhooks         {"url", "events": [...], "with_name": false} -> 201 with the endpoint
                                          and its "secret" (the one time it is given); 400 {"error"}
    DELETE /console/api/webhooks/<id>    204; 404 when there is none
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, abort, flash, jsonify, redirect, request, url_for

from bot.console import audit, auth
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from bot.webhooks import EVENTS, Endpoint, Endpoints
from conversations.errors import InvalidInput

_ERRORS = {"url": "webhook_bad_url", "url_http": "webhook_bad_url_http", "events": "webhook_bad_events",
           "too_many": "webhook_too_many"}


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/webhooks", "webhooks", webhooks, methods=["GET"])
    bp.add_url_rule("/webhooks", "add_webhook", add_webhook, methods=["POST"])
    bp.add_url_rule("/webhooks/<endpoint_id>/delete", "delete_webhook", delete_webhook, methods=["POST"])


def register_api(bp: Blueprint) -> None:
    """On the console's API blueprint (bot/console/bookings.py: its auth and CSRF rules)."""
    bp.add_url_rule("/webhooks", "api_webhooks", api_list, methods=["GET"])
    bp.add_url_rule("/webhooks", "api_add_webhook", api_add, methods=["POST"])
    bp.add_url_rule("/webhooks/<endpoint_id>", "api_delete_webhook", api_delete, methods=["DELETE"])


def _store() -> Endpoints:
    return Endpoints(svc().redis, svc().clock)


def _audit(action: str, ep_id: str, detail: str = "") -> None:
    audit.record(svc().redis, who=auth.operator_name(), action=action, target=f"webhook:{ep_id}", detail=detail,
                 now=svc().clock())


def _render(created: Endpoint | None = None, error: str = "", status: int = 200) -> Any:
    store = _store()
    listed = [(ep, store.responses(ep.id, 5)) for ep in store.all()]
    html = page("console_webhooks.html", nav="webhooks", endpoints=listed, events=EVENTS, created=created,
                error=texts()[error] if error else "", may_change=auth.may_change())
    return html, status, {"Cache-Control": "no-store"}  # a page showing a secret is never cached


def webhooks() -> Any:
    return _render()


def add_webhook() -> Any:
    if not auth.may_change():
        abort(403)
    try:
        ep = _store().create(request.form.get("url", ""), request.form.getlist("events"),
                             with_name=request.form.get("with_name") == "1", by=auth.operator_name())
    except InvalidInput as e:
        return _render(error=_ERRORS.get(str(e), "webhook_bad_url"), status=400)
    _audit("webhook.create", ep.id, ",".join(ep.events))
    return _render(created=ep)


def delete_webhook(endpoint_id: str) -> Any:
    if not auth.may_change():
        abort(403)
    ok = _store().delete(endpoint_id)
    if ok:
        _audit("webhook.delete", endpoint_id)
    flash(texts()["webhook_deleted" if ok else "webhook_delete_failed"], "ok" if ok else "error")
    return redirect(url_for("console.webhooks"))


def _json_error(why: str, status: int = 400) -> Response:
    return Response(json.dumps({"error": why}) + "\n", status, mimetype="application/json")


def api_list() -> Response:
    store = _store()
    return jsonify({"endpoints": [{**ep.public(), "last": [r.__dict__ for r in store.responses(ep.id)]}
                                  for ep in store.all()]})


def api_add() -> Response:
    if not auth.may_change():
        return _json_error("this account may view but not change", 403)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        return _json_error("a JSON object with url and events (a list)")
    try:
        ep = _store().create(str(body.get("url") or ""), [str(e) for e in body["events"]],
                             with_name=body.get("with_name") is True, by=auth.operator_name())
    except InvalidInput as e:
        return _json_error(f"invalid {e}")
    _audit("webhook.create", ep.id, ",".join(ep.events))
    res = jsonify({**ep.public(), "secret": ep.secret})
    res.status_code = 201
    res.headers["Cache-Control"] = "no-store"
    return res


def api_delete(endpoint_id: str) -> Response:
    if not auth.may_change():
        return _json_error("this account may view but not change", 403)
    if not _store().delete(endpoint_id):
        return _json_error("no such endpoint", 404)
    _audit("webhook.delete", endpoint_id)
    return Response(status=204)
