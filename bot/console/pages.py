"""The console's pages (blueprint ``console``): login, overview, leads, teams, delivery, operators, profile, audit.

This module makes the blueprint (its guard, headers and error pages); each page's views are in their own
module under :mod:`bot.console.routes`, which registers them on it.

Every page needs a logged-in session and every POST a CSRF token (:func:`bot.console.auth.guard_pages`).
A form's POST answers with a redirect to the page it came from (a reload never posts twice), and a
one-line notice carried in the session (Flask's ``flash``).
"""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_wtf.csrf import CSRFError

from bot.console import auth, routes
from bot.console.texts import texts
from conversations.errors import StoreUnavailable


def blueprint() -> Blueprint:
    bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
                   static_folder="static", static_url_path="/static")
    auth.guard_pages(bp, open_endpoints=frozenset({"console.login", "console.static"}))
    auth.secure_headers(bp)
    bp.register_error_handler(CSRFError, csrf_failed)
    bp.register_error_handler(404, not_found)
    bp.register_error_handler(StoreUnavailable, unavailable)
    routes.register(bp)
    bp.context_processor(actor_context)
    return bp


def actor_context() -> dict[str, object]:
    """Every page's nav: who is logged in (their profile, the Operators link for an admin)."""
    try:
        return {"actor": auth.current_actor()}
    except StoreUnavailable:
        return {"actor": None}


def csrf_failed(_e: CSRFError) -> tuple[str, int]:
    return render_template("console_error.html", t=texts(), title=texts()["csrf_title"],
                           body=texts()["csrf_body"]), 400


def not_found(_e: Exception) -> tuple[str, int]:
    return render_template("console_error.html", t=texts(), title=texts()["not_found"], body=""), 404


def unavailable(_e: StoreUnavailable) -> tuple[str, int]:
    return render_template("console_error.html", t=texts(), title=texts()["unavailable_title"],
                           body=texts()["unavailable_body"]), 503
