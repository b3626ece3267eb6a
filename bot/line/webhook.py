"""Flask adapter for LINE: request -> InboundEvents -> Bot.handle -> response. Nothing else.

With ``CRMBOT_LINE_FORWARD_URL`` every body accepted here is also queued, once, for the other LINE tool
(bot/line/forward.py): riding on the round trip of the first event's commit, or in one of its own when no
event commits (a body with no event for crmbot, or only events already applied)."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, Response, current_app, request

from bot.line import events, forward
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
        signature = request.headers.get("X-Line-Signature")
        if not events.signature_ok(cfg.line_channel_secret, body, signature):
            log.warning("line webhook: bad or missing signature (%d bytes)", len(body))
            return "bad signature", 400
        try:
            script = svc.content()  # the content version in use: its keywords (read every few seconds)
        except StoreUnavailable as e:
            log.error("line webhook: store unavailable (%s); LINE will redeliver", e)
            return "store unavailable", 503
        try:
            payload = json.loads(body)
            # Lone surrogates ("\ud800" escapes) are valid JSON but not text: nothing made of them can
            # be stored or sent (UnicodeEncodeError, a ValueError). Deep nesting: RecursionError.
            json.dumps(payload, ensure_ascii=False).encode()
            inbound = list(events.parse(payload, script.keywords, script.glossary))
        except (ValueError, RecursionError, InvalidInput) as e:  # JSONDecodeError is a ValueError
            # the reason in its own words: a "body: ..." part of a message is cut by the log cleaner (bot.logs)
            log.warning("line webhook: malformed body (%s), refused", type(e).__name__)
            return "malformed body", 400
        once = (forward.once_for(body, signature or "", payload, svc.clock(), cfg.dedupe_ttl)
                if cfg.line_forward_url else None)
        try:
            for ev in inbound:
                if svc.bot.handle(ev, once=once).rode:
                    once = None
            if once is not None:
                svc.outbox.put_once(once.mark, once.job, ttl=once.ttl)
        except StoreUnavailable as e:
            log.error("line webhook: store unavailable (%s); LINE will redeliver", e)
            return "store unavailable", 503
        except Contention:
            log.warning("line webhook: a user's record kept changing; LINE will redeliver")
            return "busy, try again", 503
        return Response("OK", 200, mimetype="text/plain")

    return bp
