"""GET /healthz: 200 while Redis answers and can persist; 503 otherwise, saying which.

One round trip (``INFO persistence``, which proves Redis answers too): "redis unavailable" when it
does not answer, "redis: cannot persist (disk full?): aof_last_write_status=err" when it cannot write
its files and so refuses every write (:mod:`bot.persistence`).
"""

from __future__ import annotations

from flask import Blueprint, current_app

from bot.persistence import SHORT, persistence_problem
from conversations.errors import StoreUnavailable


def blueprint() -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    def healthz() -> tuple[str, int]:
        try:
            problem = persistence_problem(current_app.extensions["crmbot"].redis)
        except (StoreUnavailable, OSError):
            return "redis unavailable", 503
        if problem:
            return f"{SHORT}: {problem}", 503
        return "ok", 200

    return bp
