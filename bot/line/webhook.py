"""Flask adapter for LINE: request -> InboundEvents -> Bot.handle -> response. Nothing else."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, request

from bot.line import events
from conversations.errors import Contention, InvalidInput, StoreUnavailable

log = logging.getLogger(__name__)


def blueprint() -> Blueprint:
    bp = Blueprint("line", __name__)

    @bp.post("/line/webhook")
    def webhook() -> Response | tuple[str, int]:
        svc = current_app.extensions["crmbot"]
        cfg = svc.config
        if not cfg.line_enabled:
            return "LINE is not configured on this server", 503
        body = request.get_data(cache=False)
        if not events.signature_ok(cfg.line_channel_secret, body, request.headers.get("X-Line-Signature")):
            log.warning("line webhook: bad or missing signature (%d bytes)", len(body))
            return "bad signature", 400
        try:
            payload = json.loads(body)
            # Lone surrogates ("\ud800" escapes) are valid JSON but not text: nothing made of them can
            # be stored or sent (UnicodeEncodeError, a ValueError). Deep nesting: RecursionError.
            json.dumps(payload, ensure_ascii=False).encode()
            inbound = list(events.parse(payload, svc.script.keywords, svc.script.glossary))
        except (ValueError, RecursionError, InvalidInput) as e:  # JSONDecodeError is a ValueError
            # the reason in its own words: a "body: ..." part of a message is cut by the log cleaner (bot.logs)
            log.warning("line webhook: malformed body (%s), refused", type(e).__name__)
            return "malformed body", 400
        try:
            for ev in inbound:
                svc.bot.handle(ev)
        except StoreUnavailable as e:
            log.error("line webhook: store unavailable (%s); LINE will redeliver", e)
            return "store unavailable", 503
        except Contention:
            log.warning("line webhook: a user's record kept changing; LINE will redeliver")
            return "busy, try again", 503
        return Response("OK", 200, mimetype="text/plain")

    return bp
