"""The "web" transport: the try-it chat page (``/console/try``) as a transport like LINE and Slack.

The page's user is ``Subject("web", <random id kept in the browser session>)``. What they tap or type
goes through :meth:`bot.core.Bot.handle` like a LINE webhook (same machine, same store, same
exactly-once commit); the job it commits is delivered by the worker like every other job, with
:class:`WebChatTransport`: it renders the outputs with :mod:`bot.views` (the words and buttons of the
terminal chat and of LINE's quick replies, from the script they were committed with) and appends them to
the user's *inbox*, a list in the user's hash slot that the page polls (:class:`Inbox`).

An append is exactly once: each carries a mark (the job id, or the typed message's event id) that a
Lua script sets in the same step, so a worker that delivers a job again after a crash (the claim ran
out before the outcome was recorded) appends nothing the second time. The same script trims the inbox
to its last :data:`INBOX_MAX` messages and the marks to the last :data:`INBOX_MAX` appends, so a chat
used for months keeps a bounded list and hash (a job is redelivered within a lease, seconds, not
hundreds of appends later).

Web users are test users: the analytics leave transport ``web`` out of every figure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

from bot import views
from bot.logs import uid
from bot.scripts import Scripts
from bot.worker import DELIVERED, Attempt, Outcome
from conversations import jobs, keys
from conversations.content import Script
from conversations.keys import Subject
from conversations.outputs import (
    Advice,
    BookingNote,
    ConfirmRestart,
    ConsultAck,
    Definition,
    DoneHelp,
    Erasure,
    FollowOffer,
    FollowStep,
    Greeting,
    Heard,
    JobOutput,
    Notice,
    Offer,
    OptinOffer,
    Output,
    Qualify,
    Question,
    Reminder,
    Result,
    Resume,
    Slots,
    job_output,
)
from conversations.redis_ops import async_runner, runner, text
from conversations.transports import Transport

log = logging.getLogger(__name__)

TRANSPORT = Transport.WEB
INBOX_MAX = 400  # messages, and marks of appends, kept per web user (older ones are dropped; the counter goes on)
INBOX_TTL = 7 * 86400  # seconds an idle web chat is kept

# Append messages to a web user's inbox, once per mark.
# KEYS[1] the inbox (list of "<n>:<message JSON>")   crmbot:{u:web:<id>}:inbox
# KEYS[2] its meta (hash)   crmbot:{u:web:<id>}:inbox:meta
#         "n" -> the last message's number, "k" -> the last mark's number,
#         "m:<mark>" -> its number and "k:<number>" -> its mark, for the last ARGV[3] marks only: the marks
#         are trimmed with the inbox, by the same bound, so the hash never holds more than 2 * ARGV[3] + 2 fields
# ARGV[1] the mark (a job id, or "e:<event id>" for what the user typed), ARGV[2] TTL in seconds,
# ARGV[3] how many messages (and marks) to keep, ARGV[4..] the messages (JSON)
# Returns the number of the last message appended, or 0 when the mark was already set (nothing written).
APPEND_LUA = """
local mark = 'm:' .. ARGV[1]
if redis.call('HEXISTS', KEYS[2], mark) == 1 then return 0 end
local keep = tonumber(ARGV[3])
local k = redis.call('HINCRBY', KEYS[2], 'k', 1)
redis.call('HSET', KEYS[2], mark, k, 'k:' .. k, ARGV[1])
if k > keep then
  local gone = redis.call('HGET', KEYS[2], 'k:' .. (k - keep))
  if gone then redis.call('HDEL', KEYS[2], 'm:' .. gone, 'k:' .. (k - keep)) end
end
local n = 0
for i = 4, #ARGV do
  n = redis.call('HINCRBY', KEYS[2], 'n', 1)
  redis.call('RPUSH', KEYS[1], n .. ':' .. ARGV[i])
end
redis.call('LTRIM', KEYS[1], -keep, -1)
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return n
"""


def subject(user_id: str) -> Subject:
    return Subject(TRANSPORT, user_id)


def _button(b: views.Button) -> dict[str, str]:
    return {"label": b.label, "data": b.data, "echo": b.echo}


def render(script: Script, outputs: Iterable[JobOutput]) -> list[dict[str, Any]]:
    """The bot's messages for a job's outputs: the words and buttons every channel uses (bot.views);
    a result also carries its parts, so the page can draw it as a card as LINE does."""
    messages: list[dict[str, Any]] = []
    for given in outputs:
        out = job_output(given) if isinstance(given, Mapping) else given
        if isinstance(out, dict):  # a payload this page does not show: the rest still shows
            log.warning("webchat: no rendering for output type %r", str(out.get("type"))[:40])
            continue
        messages.append(message(script, out))
    return messages


def message(script: Script, out: Output) -> dict[str, Any]:
    msg: dict[str, Any] = {"from": "bot", "kind": out.kind, "text": views.plain_text(script, out),
                           "buttons": [_button(b) for b in views.buttons_for(script, out)]}
    match out:
        case Result(answers=answers, prev=prev, peers=peers):
            v = views.result_view(script, answers, prev, peers)
            msg["card"] = {"tier": v.result.tier, "heading": v.heading, "label": v.label, "count": v.count_line,
                           "closeness": v.closeness, "comparison": list(v.comparison),
                           "point_heading": v.point_heading, "point_title": v.point_title,
                           "point_text": v.point_text, "point_peer": v.point_peer, "plan_heading": v.plan_heading,
                           "plan": [{"when": p.when, "title": p.title, "step": p.step, "peer": p.peer}
                                    for p in v.plan],
                           "framing": v.framing, "summary": v.summary, "theme_heading": v.theme_heading,
                           "theme": v.theme, "answers_heading": v.answers_heading, "answers": v.result.answers,
                           "rows": [{"q": r.q + 1, "topic": r.topic, "letter": r.letter} for r in v.rows]}
        case (Greeting() | Offer() | Notice() | Question() | Resume() | ConfirmRestart() | Advice() | DoneHelp()
              | OptinOffer() | ConsultAck() | Reminder() | Definition() | Erasure() | Heard() | Slots()
              | BookingNote() | Qualify() | FollowOffer() | FollowStep()):
            pass  # text and buttons
        case _:
            assert_never(out)
    return msg


def user_message(said: str) -> dict[str, Any]:
    """What the user typed or tapped, as their side of the chat shows it."""
    return {"from": "user", "kind": "said", "text": said, "buttons": []}


def _encode(messages: Iterable[Mapping[str, Any]]) -> list[str]:
    return [json.dumps(m, ensure_ascii=False, separators=(",", ":")) for m in messages]


def _decode(raw: Any) -> dict[str, Any] | None:
    n, sep, body = text(raw).partition(":")
    if not sep or not n.isdigit():
        return None
    msg: dict[str, Any] = json.loads(body)
    msg["n"] = int(n)
    return msg


class WebChatTransport:
    """The worker's sender for transport "web": renders a job's outputs into the user's inbox."""

    transport = TRANSPORT

    def __init__(self, scripts: Scripts, *, ttl: int = INBOX_TTL, keep: int = INBOX_MAX) -> None:
        self.scripts = scripts
        self.ttl = ttl
        self.keep = keep

    async def deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        who = subject(job.to)
        messages = render(await self.scripts.of(attempt.redis, job.content, job.var), job.outputs)
        if not messages:
            return Outcome(DELIVERED, "nothing to show")
        last = await async_runner(attempt.redis).script(APPEND_LUA)(
            keys=[keys.inbox(who), keys.inbox_meta(who)], args=[job.id, self.ttl, self.keep, *_encode(messages)])
        if int(last) == 0:
            return Outcome(DELIVERED, "already in the inbox")
        log.debug("webchat: %d message(s) to %s", len(messages), uid(job.to))
        return Outcome(DELIVERED, f"{len(messages)} message(s)")

    async def close(self) -> None:
        return None


@dataclass(frozen=True)
class Page:
    messages: list[dict[str, Any]]  # each with its number "n", oldest first
    last: int  # the number of the newest message (0: none yet)
    pending: bool  # jobs for this user wait in the mailbox: the bot is still "typing"


class Inbox:
    """The web tier's side: read a web user's inbox, and put what they typed in it."""

    def __init__(self, client: Any, *, ttl: int = INBOX_TTL, keep: int = INBOX_MAX) -> None:
        self.r = runner(client)
        self.ttl = ttl
        self.keep = keep
        self._append = self.r.script(APPEND_LUA)

    def said(self, who: Subject, event_id: str, said: str) -> bool:
        """Show what the user said, once per event (a repeated POST shows it once). False if already there."""
        return bool(self._append(keys=[keys.inbox(who), keys.inbox_meta(who)],
                                 args=[f"e:{event_id}", self.ttl, self.keep, *_encode([user_message(said)])]))

    def read(self, who: Subject, after: int = 0) -> Page:
        """Messages numbered above ``after`` (one round trip)."""
        with self.r.pipeline(transaction=False) as p:
            p.lrange(keys.inbox(who), 0, -1)
            p.hget(keys.inbox_meta(who), "n")
            p.hlen(jobs.mailbox(who.tag_name))
            raw, last, waiting = p.execute()
        messages = [m for m in (_decode(x) for x in raw) if m is not None and m["n"] > after]
        return Page(messages, int(last or 0), bool(waiting))

    def clear(self, who: Subject) -> None:
        self.r.delete(keys.inbox(who), keys.inbox_meta(who))
