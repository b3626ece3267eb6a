"""GET /healthz: 200 while Redis answers, 503 otherwise."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app


def blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> tuple[str, int]:
        try:
            current_app.extensions["crmbot"].redis.ping()
        except (redis.RedisError, OSError):
            return "redis unavailable", 503
        return "ok", 200

    return bp
