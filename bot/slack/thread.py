"""A lead's thread in the operator's channel (bot/handoff.py): the words and Block Kit of its posts
(:class:`ThreadRenderer`, injected by the app factory), and how the worker sends them (:func:`deliver`).

Owner's messages are outside text: they go in ``plain_text`` (no mention, no link markup can work), a
sticker, image or file as a short note of what was sent. A post waits for the lead's brief (its thread)
and for the person's earlier posts; a receipt adds ✓ to the operator's reply once its LINE push is done,
or says in the thread that it could not be sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import handoff
from bot.booking_news import BookingNews
from bot.core import Said
from bot.mrkdwn import escape
from bot.worker import DEFER, DELIVERED, RETRY, Attempt, Outcome
from scoring.periods import DEFAULT_TZ, zone

if TYPE_CHECKING:
    from bot.slack.transport import SlackTransport

SENT_REACTION = "white_check_mark"
WAIT = 1.0  # seconds before a post waiting for its brief or an earlier post looks again
WAIT_PUSH = 3.0  # seconds before a receipt looks at its reply's LINE push again (LINE may be retrying it)
DEFER_FOR = 600.0  # seconds a post waits for its brief without counting attempts (then retried, and parked)
MAX_SECTION = 3000  # Slack's limit for a section's text

TEXTS: dict[str, dict[str, str]] = {
    "ja": {
        "from_owner": "💬 LINEでのメッセージ",
        "sticker": "（スタンプが送られました）",
        "image": "（画像が送られました）",
        "video": "（動画が送られました）",
        "audio": "（音声メッセージが送られました）",
        "file": "（ファイル「{name}」が送られました）",
        "location": "（位置情報「{name}」が送られました）",
        "other": "（メッセージが送られました）",
        "requested": "📝 相談のお申し込みがありました",
        "booked": "📅 予約されました：{when}（{format}）",
        "changed": "🔁 予約が変更されました：{when}（{format}）",
        "cancelled": "✖️ 予約が取り消されました：{when}",
        "attended": "✅ 相談が行われました：{when}",
        "no_show": "⚠️ 予約の時間に来られませんでした：{when}",
        "by": "（{by}）",
        "by_owner": "オーナー",
        "message": "オーナーへのメッセージ：{message}",
        "ended": "🔚 対応を終了しました（<@{by}>）。これからのメッセージにはボットが答えます。",
        "not_sent": "⚠️ この返信はLINEに送れませんでした。時間をおいてもう一度書き込んでください。",
        "unknown_when": "日時未定",
    },
    "en": {
        "from_owner": "💬 Message on LINE",
        "sticker": "(sent a sticker)",
        "image": "(sent an image)",
        "video": "(sent a video)",
        "audio": "(sent a voice message)",
        "file": "(sent the file \u201c{name}\u201d)",
        "location": "(sent the location \u201c{name}\u201d)",
        "other": "(sent a message)",
        "requested": "📝 A consultation was requested",
        "booked": "📅 Booked: {when} ({format})",
        "changed": "🔁 Booking changed: {when} ({format})",
        "cancelled": "✖️ Booking cancelled: {when}",
        "attended": "✅ The consultation took place: {when}",
        "no_show": "⚠️ The owner did not come: {when}",
        "by": " ({by})",
        "by_owner": "the owner",
        "message": "Message to the owner: {message}",
        "ended": "🔚 Conversation ended (<@{by}>). The bot answers the owner's messages again.",
        "not_sent": "⚠️ This reply could not be sent on LINE. Please write it again in a while.",
        "unknown_when": "time not set",
    },
}
NOTES = ("sticker", "image", "video", "audio", "file", "location")


def _t(locale: str, key: str, **params: object) -> str:
    words = TEXTS.get(locale, TEXTS["ja"])[key]
    return words.format(**params) if params else words


def _context(words: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": words}]}


def _post(words: str, blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "slack_post", "text": words[:3000], "blocks": blocks}


class ThreadRenderer:
    """bot.handoff.ThreadRender for Slack."""

    def __init__(self, locale: str = "ja") -> None:
        self.locale = locale

    def owner(self, said: Said) -> dict[str, Any]:
        if said.kind == "text" and said.text:
            body = said.text
        elif said.kind in NOTES:
            body = _t(self.locale, said.kind, name=(said.text or "?")[:100])
        else:
            body = _t(self.locale, "other")
        chunks = [body[i:i + MAX_SECTION] for i in range(0, min(len(body), 2 * MAX_SECTION), MAX_SECTION)]
        blocks = [_context(_t(self.locale, "from_owner"))]
        blocks += [{"type": "section", "text": {"type": "plain_text", "text": c, "emoji": True}} for c in chunks]
        return _post(escape(body), blocks)

    def _when(self, news: BookingNews) -> tuple[str, str]:
        booking = news.booking
        if booking is None:
            return _t(self.locale, "unknown_when"), ""
        start = booking.start.astimezone(zone(DEFAULT_TZ))
        end = booking.end.astimezone(zone(DEFAULT_TZ))
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}", booking.format

    def news(self, news: BookingNews) -> dict[str, Any]:
        when, fmt = self._when(news)
        line = _t(self.locale, news.kind, when=when, format=escape(fmt))
        by = _t(self.locale, "by_owner") if news.by == "owner" else escape(news.by[:80])
        words = line + _t(self.locale, "by", by=by)
        blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": words}}]
        if news.message:
            blocks.append(_context(_t(self.locale, "message", message=escape(news.message[:1000]))))
        return _post(words, blocks)

    def ended(self, by: str) -> dict[str, Any]:
        words = _t(self.locale, "ended", by=escape(by))
        return _post(words, [{"type": "section", "text": {"type": "mrkdwn", "text": words}}])

    def not_sent(self) -> str:
        return _t(self.locale, "not_sent")


async def deliver(transport: SlackTransport, client: AsyncWebClient, attempt: Attempt, workspace: str,
                  target: str) -> Outcome:
    """A post into a lead's thread, or a receipt on an operator's reply (see the module's doc)."""
    job = attempt.job
    state = job.slack
    found = await handoff.thread_of(attempt.redis, state.person)
    if found is None:
        kind = DEFER if attempt.now - job.received < DEFER_FOR else RETRY
        return Outcome(kind, "slack: the lead's brief (its thread) is not posted yet", WAIT)
    channel, thread_ts = found
    out = job.outputs[0]
    if not isinstance(out, dict):
        return Outcome(RETRY, "slack: a thread job without a post")
    if state.role == handoff.RECEIPT_ROLE:
        return await _receipt(transport, client, attempt, workspace, channel, thread_ts, out)
    if await handoff.earlier_pending(attempt.redis, job):
        return Outcome(DEFER, "slack: an earlier post of the thread goes first", WAIT)
    outcome = await transport.post(client, attempt, workspace, channel, str(out.get("text") or ""), out.get("blocks"),
                                   thread_ts)
    if outcome.kind == DELIVERED and state.read:
        await handoff.record_read(attempt.redis, state.person, state.read)
    return outcome


async def _receipt(transport: SlackTransport, client: AsyncWebClient, attempt: Attempt, workspace: str, channel: str,
                   thread_ts: str, out: dict[str, Any]) -> Outcome:
    state = await handoff.push_state(attempt.redis, attempt.job, str(out.get("push") or ""),
                                     str(out.get("event") or ""))
    if state == "pending":
        return Outcome(DEFER, "slack: the reply's LINE push is not done yet", WAIT_PUSH)
    if state == "done":
        try:
            await client.reactions_add(channel=channel, timestamp=str(out.get("ts") or ""), name=SENT_REACTION)
        except SlackApiError as e:
            if str(e.response.get("error", "")) != "already_reacted":
                raise
        return Outcome(DELIVERED, "receipt: pushed")
    words = str(out.get("failed") or "")
    return await transport.post(client, attempt, workspace, channel, words, [_context(words)], thread_ts)
