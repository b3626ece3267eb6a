"""The operator's consultation brief in Slack: the words and Block Kit of the post the core's hook
(:class:`bot.operator.ConsultBriefs`) commits for a lead, rendered from the lead's data.

Who (the LINE display name when known), the tier and the number of A answers, the ten answers each
with its question's topic, the one point to fix, when it was asked, where the person came from (a source)
and their answers to the script's qualification questions (商材, 月商 ...) when they gave any.

The display name is outside text (anyone who adds the bot on LINE chooses it): it goes into the brief only through
:func:`bot.mrkdwn.escape`, so a name like ``<!channel>`` pings nobody and a ``<url|label>`` in it is
no link. The app factory (:func:`bot.app.make_consult_hook`) injects :class:`BriefRenderer`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from bot.logs import uid
from bot.mrkdwn import escape, mrkdwn
from conversations.analytics import Lead
from conversations.content import Script
from scoring import QUESTION_COUNT
from scoring.periods import DEFAULT_TZ, zone

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
        "no_diagnosis": "診断なし（診断の前のお申し込み）",
        "when": "受付",
        "answers": "回答",
        "no_answer": "—（未回答）",
        "point": "次に整えたい一点",
        "all_a": "すべてA：次のテーマへ",
        "footer": "診断 #{number} · {user}",
        "fallback": "相談のお申し込み：{who}（{result}）",
        "source": "流入元",
        "qualify": "お店について",
        "skipped": "（答えない）",
        "end": "対応終了",
        "end_hint": "返信はこのスレッドに。`//` か `(メモ)` で始めた書き込みはオーナーに送られません。",
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
        "no_diagnosis": "No diagnosis (asked before taking it)",
        "when": "Asked",
        "answers": "Answers",
        "no_answer": "— (not answered)",
        "point": "The one point to fix next",
        "all_a": "All A: on to the next theme",
        "footer": "Diagnosis #{number} · {user}",
        "fallback": "Consultation request: {who} ({result})",
        "source": "Source",
        "qualify": "About the shop",
        "skipped": "(skipped)",
        "end": "End conversation",
        "end_hint": "Reply in this thread. A message starting with `//` or `(メモ)` is a note: not sent to the owner.",
    },
}
CHANNEL_NAMES = {"line": "LINE", "slack": "Slack", "web": "Web"}
END_ACTION = "handoff_end"  # 「対応終了」: bot/slack/listeners/handoff.py


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
    elif lead.number == 0:  # a consultation asked for with no diagnosis taken
        result = _t(locale, "no_diagnosis")
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
    fields = [
        _field(_t(locale, "who"), who),
        _field(_t(locale, "channel"), CHANNEL_NAMES.get(lead.channel, lead.channel)),
        _field(_t(locale, "result"), result),
        _field(_t(locale, "when"), asked),
    ]
    if lead.source:  # a source name: letters, digits, - and _ only (conversations.inputs.source_name)
        fields.append(_field(_t(locale, "source"), lead.source))
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
        {"type": "section", "fields": fields},
    ]
    if lead.number:
        blocks.append({"type": "section", "text": mrkdwn(f"*{_t(locale, 'answers')}*\n" + "\n".join(lines))})
    if answered := script.qualify.answered(lead.qual):
        shop = [f"{escape(label)}{colon}{escape(choice) if choice else _t(locale, 'skipped')}"
                for label, choice in answered]
        blocks.append({"type": "section", "text": mrkdwn(f"*{_t(locale, 'qualify')}*\n" + "\n".join(shop))})
    if lead.is_finished:
        point = lead.point
        if point is None:
            fix = _t(locale, "all_a")
        else:
            question = script.questions[point]
            letter = lead.answers[point]
            fix = f"Q{point + 1} {question.topic}（{letter}：{question.choices[letter].label}）"
        blocks.append({"type": "section", "text": mrkdwn(f"*{_t(locale, 'point')}*\n{fix}")})
    if lead.channel == "line":  # the lead's thread: the operator answers there and ends the handoff here
        blocks.append({"type": "actions", "elements": [{
            "type": "button", "action_id": END_ACTION, "text": {"type": "plain_text", "text": _t(locale, "end")},
            "value": f"line:{lead.user_id}"[:2000]}]})
    footer = [mrkdwn(_t(locale, "footer", number=lead.number, user=uid(lead.user_id)))]
    if lead.channel == "line":
        footer.append(mrkdwn(_t(locale, "end_hint")))
    blocks.append({"type": "context", "elements": footer})
    return _t(locale, "fallback", who=who, result=result), blocks


class BriefRenderer:
    """The brief of a lead as the outputs of the operator channel's job (one Slack post)."""

    def __init__(self, script: Script, locale: str = "ja") -> None:
        self.script = script
        self.locale = locale

    def __call__(self, lead: Lead) -> list[dict[str, Any]]:
        text, blocks = brief(self.script, self.locale, lead)
        return [{"type": "slack_post", "text": text, "blocks": blocks}]
