"""``/console/nurture``: LINE's figures per follow-up step and per nudge over a period (Japan-time dates, the last
30 days by default): delivered, opened, clicked and the rates (bot/console/nurture.py). Read-only: a viewer sees
it as an operator does."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from bot.console import fmt, nurture
from bot.console.routes.common import page, svc
from bot.console.texts import texts

NURTURE_DAYS = 30  # the page's default period: the last 30 days
MAX_DAYS = 400  # the longest period (as long as the figures are kept: bot.insight.KEEP_DAYS)


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/nurture", "nurture", nurture_page, methods=["GET"])


def nurture_page() -> Any:
    s, t = svc(), texts()
    try:
        start, end = fmt.day_range(request.args.get("from"), request.args.get("to"), s.clock(), NURTURE_DAYS)
        assert start is not None and end is not None
        if (end - start).days >= MAX_DAYS:
            raise ValueError("range")
    except ValueError:
        start, end = fmt.day_range(None, None, s.clock(), NURTURE_DAYS)
        return page("console_nurture.html", nav="nurture", start=start, end=end, groups=None, error=t["bad_date"])
    return page("console_nurture.html", nav="nurture", start=start, end=end,
                groups=nurture.read(s.redis, start, end, t), error="")
