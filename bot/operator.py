"""The operator is told of a consultation request at once: a brief in their Slack channel.

With ``CRMBOT_OPERATOR_SLACK_CHANNEL`` set (and Slack configured), :func:`make_consult_hook` gives the
hook the worker's analytics sink calls when a lead's consultation request is first applied
(bot/analytics_sink.py, ``on_first_consult``). The hook queues one Slack post, a *brief* so the first
call starts prepared: who (the LINE display name when known), the tier and the number of A answers,
the ten answers each with its question's topic, the one point to fix, and when it was asked. The
display name is outside text (anyone who adds the bot on LINE chooses it): it goes into the brief only
through :func:`bot.mrkdwn.escape`, so a name like ``<!channel>`` pings nobody and a ``<url|label>`` in
it is no link.

Exactly once per lead: the post is a :class:`~conversations.jobs.Job` in the operator channel's
mailbox (``{op:<channel>}``), queued by :meth:`bot.outbox.Outbox.put_once` together with a ledger
mark in the same hash slot (``conversations.keys.consult_briefed``). The sink may call the hook again
(a worker that died after running it, before marking the lead told): the mark makes that a no-op. The
worker delivers the post like any other (retries, parking, no duplicate after a lost answer).

The hook is sync (the sink runs it in a thread): it uses its own redis-py client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.config import Config
from bot.logs import uid
from bot.mrkdwn import escape, mrkdwn
from bot.outbox import Outbox
from conversations import keys
from conversations.analytics import Lead
from conversations.content import Script
from conversations.jobs import Job
from conversations.transports import SlackState, Transport
from scoring import QUESTION_COUNT
from scoring.periods import DEFAULT_TZ, zone

log = logging.getLogger(__name__)
BRIEF_TTL = 180 * 86400  # seconds a lead's ledger mark is kept (far beyond any retry of its job)
WORKSPACE = "op"  # the Slack job's workspace part (pacing keys only): the channel ID is the address

ConsultHook = Callable[[Lead], None]

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "title": "相談のお申し込み",
        "test": "（お試し画面からのテストです）",
        "who": "お名前",
        "unknown": "（未取得）",
        "channel": "チャネル",
        "result": "結果",
        "tier": "{label}（Aの数 {count}/{total}）",
        "unfinished": "診断の途中（Q{reached}まで、Aの数 {count}）",
        "when": "受付",
        "answers": "回答",
        "no_answer": "—（未回答）",
        "point": "次に整えたい一点",
        "all_a": "すべてA：次のテーマへ",
        "footer": "診断 #{number} · {user}",
        "fallback": "相談のお申し込み：{who}（{result}）",
    },
    "en": {
        "title": "Consultation request",
        "test": "(a test from the try-it page)",
        "who": "Name",
        "unknown": "(not known)",
        "channel": "Channel",
        "result": "Result",
        "tier": "{label} ({count}/{total} A answers)",
        "unfinished": "Diagnosis under way (up to Q{reached}, {count} A answers)",
        "when": "Asked",
        "answers": "Answers",
        "no_answer": "— (not answered)",
        "point": "The one point to fix next",
        "all_a": "All A: on to the next theme",
        "footer": "Diagnosis #{number} · {user}",
        "fallback": "Consultation request: {who} ({result})",
    },
}
CHANNEL_NAMES = {"line": "LINE", "slack": "Slack", "web": "Web"}


def _t(locale: str, key: str, **params: object) -> str:
    text = TEXTS.get(locale, TEXTS["ja"])[key]
    return text.format(**params) if params else text


def _field(title: str, value: str) -> dict[str, Any]:
    return mrkdwn(f"*{title}*\n{value}")


def brief(script: Script, locale: str, lead: Lead) -> tuple[str, list[dict[str, Any]]]:
    """The Slack message (fallback text, blocks) telling the operator of a lead's consultation request."""
    who = escape(lead.name[:100]) if lead.name else _t(locale, "unknown")  # a LINE display name: outside text
    if lead.tier is not None:
        result = _t(locale, "tier", label=script.tiers[lead.tier].label, count=lead.a_count, total=QUESTION_COUNT)
    else:
        result = _t(locale, "unfinished", reached=lead.reached or len(lead.answers), count=lead.a_count)
    asked = datetime.fromtimestamp(lead.consult_at or time.time(), zone(DEFAULT_TZ)).strftime("%Y-%m-%d %H:%M")
    lines = []
    colon = "：" if locale == "ja" else ": "
    for i, question in enumerate(script.questions):
        letter = lead.answers[i] if i < len(lead.answers) else ""
        if letter in question.choices:
            answer = f"*{letter}*　{question.choices[letter].label}"
        else:
            answer = _t(locale, "no_answer")
        lines.append(f"Q{i + 1} {question.topic}{colon}{answer}")
    title = _t(locale, "title") + (f" {_t(locale, 'test')}" if lead.test else "")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "fields": [
            _field(_t(locale, "who"), who),
            _field(_t(locale, "channel"), CHANNEL_NAMES.get(lead.channel, lead.channel)),
            _field(_t(locale, "result"), result),
            _field(_t(locale, "when"), asked),
        ]},
        {"type": "section", "text": mrkdwn(f"*{_t(locale, 'answers')}*\n" + "\n".join(lines))},
    ]
    if lead.is_finished:
        point = lead.point
        if point is None:
            fix = _t(locale, "all_a")
        else:
            question = script.questions[point]
            letter = lead.answers[point]
            fix = f"Q{point + 1} {question.topic}（{letter}：{question.choices[letter].label}）"
        blocks.append({"type": "section", "text": mrkdwn(f"*{_t(locale, 'point')}*\n{fix}")})
    blocks.append({"type": "context", "elements": [
        mrkdwn(_t(locale, "footer", number=lead.number, user=uid(lead.user_id)))]})
    return _t(locale, "fallback", who=who, result=result), blocks


class ConsultBriefs:
    """Queues the brief of each lead's consultation request, exactly once per lead."""

    def __init__(self, outbox: Outbox, script: Script, channel: str, *, locale: str = "ja",
                 clock: Callable[[], float] = time.time) -> None:
        self.outbox = outbox
        self.script = script
        self.channel = channel
        self.locale = locale
        self.clock = clock

    def __call__(self, lead: Lead) -> None:
        text, blocks = brief(self.script, self.locale, lead)
        job = Job.new(Transport.SLACK, f"{WORKSPACE}.{self.channel}", keys.operator_tag(self.channel),
                      [{"type": "slack_post", "text": text, "blocks": blocks}], self.clock(),
                      state=SlackState(lead=lead.id))
        if self.outbox.put_once(keys.consult_briefed(self.channel, lead.id), job, ttl=BRIEF_TTL):
            log.info("operator: consultation brief queued for %s", uid(lead.user_id))
        else:
            log.info("operator: consultation brief for %s was already queued", uid(lead.user_id))


def _nobody(lead: Lead) -> None:
    return None


def make_consult_hook(config: Config, script: Script, *, client: Any = None,
                      clock: Callable[[], float] = time.time) -> ConsultHook:
    """The hook for the worker's analytics sink: the operator's Slack brief when
    ``CRMBOT_OPERATOR_SLACK_CHANNEL`` is set (Config checks that Slack is configured), else nothing
    (the console's badge still shows the request). ``client``: a redis-py client (default: one
    connected from ``config``)."""
    channel = config.operator_slack_channel
    if not channel or not config.slack_enabled:
        return _nobody
    if client is None:
        from bot.redis_conn import connect

        client = connect(config)
    outbox = Outbox(client, [Transport.SLACK], clock=clock, lease=config.outbox_lease)
    return ConsultBriefs(outbox, script, channel, locale=config.locale, clock=clock)
