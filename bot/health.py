"""GET /healthz: 200 while Redis answers, 503 otherwise."""

from __future__ import annotations

from flask import Blueprint, current_app

from conversations.errors import StoreUnavailable
from conversations.redis_ops import translated


def blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> tuple[str, int]:
        try:
            with translated():
                current_app.extensions["crmbot"].redis.ping()
        except (StoreUnavailable, OSError):
            return "redis unavailable", 503
        return "ok", 200

    return bp
