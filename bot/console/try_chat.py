"""``/console/try``: take the diagnosis in a chat page, through the same bot as LINE.

The page's user is a test user of channel "web" (:mod:`bot.webchat`), ``Subject("web", <id>)`` with a
random id kept in the browser session. A tap or a typed line is POSTed (with the CSRF token) to
``/console/try/send``, which shows it in the chat, calls :meth:`bot.core.Bot.handle` (the same state
machine, store and exactly-once commit as a LINE webhook) and answers at once; the worker delivers the
replies into the user's inbox, and the page polls ``/console/try/messages?after=N`` for them (a few
lines of plain JavaScript, nothing from a CDN).

Routes (all behind the console's login, :func:`bot.console.auth.guard_pages`: a session, and a CSRF
token on every POST, here in the ``X-CSRF-Token`` header):
    GET  /console/try/                    the page (a new test user is greeted as a new LINE friend is)
    GET  /console/try/messages?after=N    JSON: the messages numbered above N, the last number, pending
    POST /console/try/send                JSON {"event", "data" (a button) or "text", "echo"}: 200 at once
    POST /console/try/reset               a new test user (a clean chat)
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any, cast

from flask import Blueprint, current_app, jsonify, render_template, request, session
from flask.blueprints import BlueprintSetupState
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, generate_csrf

from bot.console import auth
from bot.console.texts import try_texts
from bot.core import Bot, Handled, InboundEvent
from bot.logs import uid
from bot.webchat import Inbox, subject
from conversations import inputs
from conversations.content_versions import DRAFT_PREFIX
from conversations.errors import Contention, InvalidInput, StoreUnavailable
from conversations.keys import Subject

log = logging.getLogger(__name__)

SESSION_USER = "try_user"  # the test user's id (channel "web")
SESSION_DRAFT = "try_draft"  # a content draft this browser previews (conversations.content_versions), if any
HELLO = "hello"  # the event id of a new test user's first event (a follow): greeted once
EVENT_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_TEXT = 2000  # longest typed message taken
MAX_ECHO = 300  # what a tapped button shows as the user's message (LINE's displayText limit)



def _services() -> Any:
    return current_app.extensions["crmbot"]


def _inbox() -> Inbox:
    return cast(Inbox, current_app.extensions["crmbot.webchat"])


def _user(create: bool = False) -> Subject | None:
    user_id = session.get(SESSION_USER)
    if isinstance(user_id, str):
        try:
            return subject(user_id)
        except InvalidInput:
            pass
    if not create:
        return None
    return _new_user()


def _new_user() -> Subject:
    who = subject(secrets.token_hex(12))
    session[SESSION_USER] = who.user_id
    return who


def _draft_label() -> str:
    """The content label this browser's diagnoses run: its draft's ("d:<id>"), "" the one in use."""
    draft = session.get(SESSION_DRAFT)
    return DRAFT_PREFIX + draft if isinstance(draft, str) and draft else ""


def _script() -> Any:
    """The script this browser's chat speaks: its draft's, else the one in use."""
    svc = _services()
    label = _draft_label()
    return svc.versions.script_of(label) if label and svc.versions is not None else svc.content()


def _preview(draft_id: str) -> None:
    """``?draft=<id>``: this browser tries that draft (a clean chat); ``?draft=`` leaves it. Only this
    browser's test user runs it: LINE and every other user keep the version in use."""
    svc = _services()
    if draft_id and (svc.versions is None or svc.versions.draft(draft_id) is None):
        draft_id = ""
    if draft_id != (session.get(SESSION_DRAFT) or ""):
        session[SESSION_DRAFT] = draft_id
        session.pop(SESSION_USER, None)  # a new test user: the chat starts over in the chosen text


def _handle(who: Subject, event_id: str, inp: inputs.Input) -> Handled:
    bot: Bot = _services().bot
    return bot.handle(InboundEvent(who, event_id, inp, timestamp=time.time(), content=_draft_label()))


def _unavailable(e: Exception) -> ResponseReturnValue:
    log.warning("try: %s for %s (%s)", type(e).__name__, uid(session.get(SESSION_USER, "")), e)
    return jsonify(error="unavailable"), 503


def _setup(state: BlueprintSetupState) -> None:
    app = state.app
    svc = app.extensions["crmbot"]
    app.extensions["crmbot.webchat"] = Inbox(svc.redis)


def blueprint() -> Blueprint:
    bp = Blueprint("console_try", __name__, url_prefix="/console/try", template_folder="templates",
                   static_folder="static", static_url_path="/static")
    bp.record_once(_setup)
    auth.guard_pages(bp)
    auth.secure_headers(bp)  # the console's Content-Security-Policy (our own files only), no framing

    @bp.errorhandler(CSRFError)
    def csrf_failed(_e: CSRFError) -> ResponseReturnValue:
        return jsonify(error="csrf"), 400

    @bp.get("/")
    def page() -> ResponseReturnValue:
        if "draft" in request.args:
            _preview(request.args.get("draft", ""))
        who = _user()
        if who is None:
            who = _new_user()
            try:
                _handle(who, HELLO, inputs.Input(inputs.FOLLOW))  # greeted as a new LINE friend is, once
            except (StoreUnavailable, Contention) as e:
                log.warning("try: greeting not committed (%s)", type(e).__name__)
        svc = _services()
        locale = svc.config.locale
        script = _script()
        return render_template("try.html", t=try_texts(locale), locale=locale, draft=bool(_draft_label()),
                               csrf=generate_csrf(), title=script.title, menu=script.richmenu)

    @bp.get("/messages")
    def messages() -> ResponseReturnValue:
        who = _user()
        after = request.args.get("after", "0")
        if not after.isdigit() or len(after) > 12:
            return jsonify(error="after: not a number"), 400
        if who is None:
            return jsonify(messages=[], last=0, pending=False)
        try:
            got = _inbox().read(who, int(after))
        except StoreUnavailable as e:
            return _unavailable(e)
        res = jsonify(messages=got.messages, last=got.last, pending=got.pending)
        res.headers["Cache-Control"] = "no-store"
        return res

    @bp.post("/send")
    def send() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return jsonify(error="a JSON object is expected"), 400
        event, data, typed, echo = (body.get(k) for k in ("event", "data", "text", "echo"))
        if not isinstance(event, str) or not EVENT_ID.fullmatch(event) or event == HELLO:
            return jsonify(error="event: 8-64 letters, digits, - or _"), 400
        if isinstance(data, str) and data:
            inp = inputs.from_button(data)
            said = (echo if isinstance(echo, str) and echo.strip() else data).strip()[:MAX_ECHO]
        elif isinstance(typed, str) and typed.strip() and len(typed) <= MAX_TEXT:
            script = _script()
            inp = inputs.from_text(typed, script.keywords, script.glossary)
            said = typed.strip()
        else:
            return jsonify(error=f"give data (a button) or text (1-{MAX_TEXT} characters)"), 400
        who = _user(create=True)
        assert who is not None
        try:
            _inbox().said(who, event, said)
            handled = _handle(who, event, inp)
        except (StoreUnavailable, Contention) as e:
            return _unavailable(e)
        return jsonify(ok=True, status=handled.status, state=handled.state)

    @bp.post("/reset")
    def reset() -> ResponseReturnValue:
        who = _new_user()
        try:
            _handle(who, HELLO, inputs.Input(inputs.FOLLOW))
        except (StoreUnavailable, Contention) as e:
            return _unavailable(e)
        return jsonify(ok=True)

    return bp
