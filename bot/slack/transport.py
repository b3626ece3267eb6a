"""Delivers jobs to Slack from the worker (asyncio, slack_sdk's AsyncWebClient on aiohttp).

A job goes to ``<workspace>.<target>``: a user (the diagnosis in a DM; ``conversations.open``
first, the DM's channel kept in the job's state, a :class:`~conversations.transports.SlackState`) or a
team channel. It is sent with that workspace's
bot token (:mod:`bot.slack.tokens`: ``SLACK_BOT_TOKEN``, or with OAuth the workspace's installation);
a job for a workspace where the app is not installed (uninstalled) is parked, saying so. Its outputs are the diagnosis'
steps (typed outputs, rendered with the script the job was committed with: bot.scripts), or one of:

- ``slack_post`` ``{text, blocks, fallback?}``: a message in the channel; ``fallback``: the outputs to
  send instead if Slack refuses its blocks with ``invalid_blocks`` (its native chart or table, which a
  workspace or client may not take: :mod:`bot.slack.native`);
- ``slack_ephemeral`` ``{user, text, blocks}``: a message only ``user`` sees in the channel;
- ``slack_home`` ``{user, view}``: the user's App Home tab (views.publish; idempotent);
- ``slack_chart`` ``{kind, labels, series, title, alt, name, ...}``: a chart drawn here as PNG
  (:mod:`bot.charts`: ``radar`` or ``lines``) and shared with ``files_upload_v2``, its numbers in the
  image's alt text;
- ``slack_file`` ``{name, ext, content, title, comment}``: a text file (a CSV) shared the same way;
- ``slack_step`` ``{execution, token, outputs | error}``: a Workflow Builder step run completed
  (:mod:`bot.slack.completion`, with the run's own token first).

A job may hold several of these (a result post, then its radar chart): they go out in order, the
step reached checkpointed in the job's state after each, so a retry or a recovery resumes where the
earlier attempt stopped rather than posting again.

A post with a ``fallback`` that Slack refuses with ``invalid_blocks`` posted nothing: it is replaced by
its fallback outputs (the same post without the chart, or the chart drawn as an image), once. The
replacement is checkpointed (``SlackState.fallback``) before the first of them goes, so a retry or a
recovery sends the fallback, as the same steps; a fallback refused again fails the job (parked), never
a loop.

Slack has no idempotency key, so each post carries message metadata with the job id. A recovery (an
earlier attempt's outcome unknown) first looks for that id in the conversation's recent history and
only posts if it is not there. A shared file carries no metadata: its name holds the job id instead
(``kpi-radar-2026-Q1-1a2b3c4d.png``), and a recovery looks for a file of that name in the history.

Pacing: chat.postMessage allows about one message a second per channel (short bursts) and a
workspace-wide rate; both are limits shared in Redis by every worker. A DM answers the user's own
tap, one post per tap, and is not paced (as a LINE reply is not).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot import handoff
from bot.ratelimit import Limit, retry_after
from bot.scripts import Scripts
from bot.slack import completion, thread
from bot.slack.blocks import diagnosis_message
from bot.slack.metered import MeteredWebClient
from bot.slack.tokens import StaticToken, TokenBusy, TokenSource
from bot.worker import DEFER, DELIVERED, FAILED, RETRY, Attempt, Outcome
from conversations.errors import InvalidInput
from conversations.outputs import JobOutput, outputs_of
from conversations.transports import SlackState, Transport

log = logging.getLogger(__name__)
EVENT_TYPE = "crmbot_delivery"
PERMANENT = {"channel_not_found", "not_in_channel", "is_archived", "account_inactive", "user_not_found",
             "cannot_dm_bot", "invalid_auth", "not_authed", "missing_scope", "restricted_action",
             "invalid_blocks", "msg_too_long", "no_text", "user_not_in_channel", "token_revoked", "token_expired"}
# The token was refused: with OAuth the installation may hold another one by now (reinstalled, refreshed).
AUTH_ERRORS = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
TIMEOUT = 10  # seconds per Web API call
MAX_WAIT_IN_ATTEMPT = 1.0  # a longer pacing wait is left to a later attempt (deferred, not failed): a
# job waiting for its slot holds a worker slot meanwhile, and must not starve the others
FILE_OUTPUTS = ("slack_chart", "slack_file")
MAX_ALT_TXT = 1000  # Slack refuses a longer alt_txt (alt_txt_too_large)


CHANNEL_LIMIT = Limit(1.0, 5.0)  # chat.postMessage: ~1 message/s per channel, short bursts
WORKSPACE_LIMIT = Limit(1.0, 20.0)  # SLACK_RATE_PER_SECOND / SLACK_RATE_BURST


@dataclass(frozen=True)
class SlackLimits:
    channel: Limit | None = CHANNEL_LIMIT
    workspace: Limit | None = WORKSPACE_LIMIT


def file_name(out: dict[str, Any], job_id: str) -> str:
    """The name a file output is shared under: its stem, the job id's first 8 characters (what a
    recovery looks for), its extension."""
    ext = "png" if out["type"] == "slack_chart" else str(out.get("ext") or "txt")
    return f"{out['name']}-{job_id[:8]}.{ext}"


def file_bytes(out: dict[str, Any]) -> bytes:
    """A file output's content: the chart drawn as PNG, or the text as UTF-8 (a CSV keeps its BOM)."""
    if out["type"] == "slack_file":
        return str(out["content"]).encode("utf-8")
    from bot import charts

    if out["kind"] == "radar":
        return charts.radar(out["labels"], out["series"], title=out.get("title", ""), empty=out.get("empty", ""),
                            fmt="png")
    return charts.lines(out["labels"], out["series"], title=out.get("title", ""), empty=out.get("empty", ""),
                        y_range=(0, 10.5), fmt="png")


def _payload(out: JobOutput) -> dict[str, Any]:
    """A post or a file of a multi-part KPI job (never a diagnosis output: those go as one message)."""
    if not isinstance(out, dict):
        raise InvalidInput(f"a {out.kind} output in a job of posts and files")
    return out


def steps_of(outputs: list[JobOutput], state: SlackState) -> list[dict[str, Any]]:
    """A multi-part job's steps, in order: its outputs, the one Slack refused replaced by its fallback."""
    steps = [_payload(o) for o in outputs]
    if not state.fell_back:
        return steps
    if state.fallback >= len(steps) or not isinstance(replaced := steps[state.fallback].get("fallback"), list):
        raise InvalidInput(f"fell back from step {state.fallback}, which has no fallback")
    return steps[:state.fallback] + [_payload(o) for o in replaced] + steps[state.fallback + 1:]


def _multipart(out: JobOutput) -> bool:
    """An output that makes its job go step by step: a file, or a post with a fallback."""
    return isinstance(out, dict) and (out.get("type") in FILE_OUTPUTS or "fallback" in out)


def _refused_blocks(error: SlackApiError) -> bool:
    return str(error.response.get("error", "")) == "invalid_blocks"


def split_to(to: str) -> tuple[str, str]:
    """A Slack job's address "<workspace>.<user or channel>" -> (workspace, id)."""
    workspace, _, target = to.partition(".")
    return workspace, target


class SlackTransport:
    transport = Transport.SLACK

    def __init__(self, token: str | TokenSource, base_url: str, scripts: Scripts, *,
                 limits: SlackLimits | None = None, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.tokens: TokenSource = StaticToken(token) if isinstance(token, str) else token
        self.base_url = base_url
        self.scripts = scripts
        self.limits = limits or SlackLimits()
        self._clients: dict[str, AsyncWebClient] = {}  # workspace -> a client with its current token

    def client_for(self, workspace: str, token: str) -> AsyncWebClient:
        """A Web API client that sends ``token`` (made in the worker's event loop, kept per workspace)."""
        client = self._clients.get(workspace)
        if client is None or client.token != token:
            client = MeteredWebClient(token=token, base_url=self.base_url, timeout=self.timeout)  # type: ignore[arg-type]
            self._clients[workspace] = client
        return client

    async def close(self) -> None:
        for client in self._clients.values():
            if client.session is not None:
                await client.session.close()
        self._clients.clear()
        await self.tokens.close()

    async def _conversation(self, client: AsyncWebClient, attempt: Attempt, target: str) -> str:
        if not target.startswith(("U", "W")):
            return target
        state = attempt.job.slack
        if not state.dm:
            res = await client.conversations_open(users=target)
            state.dm = str(res["channel"]["id"])
        return state.dm

    async def _render(self, attempt: Attempt) -> tuple[str, list[dict[str, Any]]]:
        """A post's text and blocks: a KPI post as it was committed, or the diagnosis' outputs rendered
        with the script they were committed with."""
        outputs = attempt.job.outputs
        if len(outputs) == 1 and isinstance(post := outputs[0], dict) and post["type"] == "slack_post":
            return post["text"], post["blocks"]
        script = await self.scripts.of(attempt.redis, attempt.job.content, attempt.job.var)
        return diagnosis_message(script, outputs_of(outputs))

    async def _already_posted(self, client: AsyncWebClient, channel: str, job_id: str,
                              thread_ts: str = "") -> str | None:
        """The ts of the post carrying ``job_id`` in its metadata among the recent ones (a thread's
        replies for a post in a thread), None if there is none."""
        if thread_ts:
            res = await client.conversations_replies(channel=channel, ts=thread_ts, limit=200,
                                                     include_all_metadata=True)
        else:
            res = await client.conversations_history(channel=channel, limit=50, include_all_metadata=True)
        messages: list[dict[str, Any]] = res.get("messages") or []
        for msg in messages:
            meta = msg.get("metadata") or {}
            if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("id") == job_id:
                return str(msg.get("ts") or "?")
        return None

    async def _already_shared(self, client: AsyncWebClient, channel: str, name: str) -> bool:
        res = await client.conversations_history(channel=channel, limit=50)
        messages: list[dict[str, Any]] = res.get("messages") or []
        return any(f.get("name") == name for msg in messages for f in msg.get("files") or [])

    async def _share(self, client: AsyncWebClient, channel: str, out: dict[str, Any], name: str) -> None:
        data = await asyncio.to_thread(file_bytes, out)  # drawing takes CPU: off the event loop
        alt = str(out.get("alt") or "")[:MAX_ALT_TXT] or None
        await client.files_upload_v2(channel=channel, content=data, filename=name,
                                          title=str(out.get("title") or name)[:255], alt_txt=alt,
                                          initial_comment=out.get("comment") or None)

    async def _deliver_steps(self, client: AsyncWebClient, attempt: Attempt, workspace: str, target: str) -> Outcome:
        """Posts and files one after the other, the step reached checkpointed after each; a post whose
        blocks Slack refuses replaced by its fallback, once."""
        job = attempt.job
        state = job.slack
        dm = target.startswith(("U", "W", "D"))
        channel = await self._conversation(client, attempt, target)
        steps = steps_of(job.outputs, state)
        start = i = state.step
        while i < len(steps):
            out = steps[i]
            unknown = (attempt.recovering and i == start) or state.post_unknown
            if out["type"] in FILE_OUTPUTS:
                name = file_name(out, job.id)
                if not (unknown and await self._already_shared(client, channel, name)):
                    if not dm and (later := await self._pace(attempt, workspace, channel)) is not None:
                        return later
                    await self._share(client, channel, out, name)
            else:
                key = job.id if i == 0 else f"{job.id}.{i}"
                if not (unknown and await self._already_posted(client, channel, key)):
                    if not dm and (later := await self._pace(attempt, workspace, channel)) is not None:
                        return later
                    meta = {"event_type": EVENT_TYPE, "event_payload": {"id": key}}
                    try:
                        await client.chat_postMessage(channel=channel, text=out["text"], blocks=out.get("blocks"),
                                                      metadata=meta)
                    except SlackApiError as e:
                        if not (_refused_blocks(e) and "fallback" in out and not state.fell_back):
                            raise
                        steps = await self._fall_back(attempt, i)
                        continue  # the same step, now the fallback's first output
            state.post_unknown = False
            if i + 1 < len(steps):
                state.step = i + 1
                await attempt.checkpoint()
            i += 1
        fell = " (a refused chart sent as its fallback)" if state.fell_back else ""
        return Outcome(DELIVERED, f"{len(steps)} steps{fell}")

    async def _fall_back(self, attempt: Attempt, step: int) -> list[dict[str, Any]]:
        """Slack refused step ``step``'s blocks (nothing was posted): its fallback replaces it from now on,
        checkpointed before anything of it is sent."""
        state = attempt.job.slack
        state.fallback = step  # no step was replaced before, so it is the job's output of that index too
        state.post_unknown = False
        await attempt.checkpoint()
        log.warning("slack: job %s: Slack refused a post's blocks (invalid_blocks); sending its fallback",
                    attempt.job.id[:8])
        return steps_of(attempt.job.outputs, state)

    async def _pace(self, attempt: Attempt, workspace: str, channel: str) -> Outcome | None:
        """Wait for a slot of the channel's limit, then of the workspace's; when either is further than
        MAX_WAIT_IN_ATTEMPT, the post is deferred (no slot taken from the workspace, no failure counted).
        The channel's limit is asked first: it is rarely busy, and the workspace's is the scarce one."""
        now = attempt.clock()
        taken, wait = await attempt.limiter.reserve(f"slack:ch:{workspace}:{channel}", self.limits.channel, now,
                                                    MAX_WAIT_IN_ATTEMPT)
        if taken:
            taken, ws_wait = await attempt.limiter.reserve(f"slack:ws:{workspace}", self.limits.workspace, now,
                                                           MAX_WAIT_IN_ATTEMPT)
            wait = max(wait, ws_wait)
        if not taken:
            return Outcome(DEFER, "slack: paced", wait - MAX_WAIT_IN_ATTEMPT / 2)
        if wait > 0:
            await asyncio.sleep(wait)
        return None

    async def post(self, client: AsyncWebClient, attempt: Attempt, workspace: str, target: str, text: str,
                   blocks: list[dict[str, Any]] | None, thread_ts: str = "") -> Outcome:
        """One message (in a thread with ``thread_ts``), found by its metadata first when an earlier
        attempt's outcome is unknown; a lead's brief records its ts as the lead's thread once posted."""
        job = attempt.job
        dm = target.startswith(("U", "W", "D"))
        channel = await self._conversation(client, attempt, target)
        unknown = attempt.recovering or job.slack.post_unknown
        ts = await self._already_posted(client, channel, job.id, thread_ts) if unknown else None
        detail = "already posted (found by metadata)"
        if ts is None:
            if not dm and (later := await self._pace(attempt, workspace, channel)) is not None:
                return later
            res = await client.chat_postMessage(channel=channel, text=text, blocks=blocks, thread_ts=thread_ts or None,
                                                metadata={"event_type": EVENT_TYPE, "event_payload": {"id": job.id}})
            ts, detail = str(res.get("ts") or ""), "posted"
        if job.slack.role == handoff.BRIEF and job.slack.person and ts:
            await handoff.record_thread(attempt.redis, job.slack.person, channel, ts)
        return Outcome(DELIVERED, detail)

    async def deliver(self, attempt: Attempt) -> Outcome:
        job = attempt.job
        workspace, target = split_to(job.to)
        first = job.outputs[0] if len(job.outputs) == 1 else None
        kind = first.get("type") if isinstance(first, dict) else None
        if kind == completion.STEP_OUTPUT and isinstance(first, dict):
            return await completion.deliver(attempt, workspace, first, self.tokens, self.base_url, self.timeout)
        try:
            token = await self.tokens.token(attempt.redis, workspace)
        except TokenBusy:
            return Outcome(RETRY, "slack: the workspace's token is being refreshed", 1.0)
        if token is None:
            return Outcome(FAILED, f"slack: the app is not installed in workspace {workspace[:32]} (uninstalled?): "
                                   "no token; requeue after installing it again")
        client = self.client_for(workspace, token)
        try:
            if any(_multipart(o) for o in job.outputs):
                return await self._deliver_steps(client, attempt, workspace, target)
            if kind == "slack_home" and isinstance(first, dict):
                await client.views_publish(user_id=first["user"], view=first["view"])
                return Outcome(DELIVERED, "home published")
            if kind == "slack_ephemeral" and isinstance(first, dict):
                await client.chat_postEphemeral(channel=target, user=first["user"], text=first["text"],
                                                     blocks=first.get("blocks"))
                return Outcome(DELIVERED, "ephemeral")
            if job.slack.role in (handoff.THREAD, handoff.RECEIPT_ROLE):
                return await thread.deliver(self, client, attempt, workspace, target)
            try:
                text, blocks = await self._render(attempt)
            except InvalidInput as e:
                return Outcome(FAILED, f"slack: {e}")
            return await self.post(client, attempt, workspace, target, text, blocks)
        except SlackApiError as e:
            status = e.response.status_code
            error = str(e.response.get("error", ""))
            if status == 429 or error == "ratelimited":
                seconds = retry_after((e.response.headers or {}).get("Retry-After")
                                      or (e.response.headers or {}).get("retry-after"))
                if not job.to.partition(".")[2].startswith(("U", "W", "D")):
                    now = attempt.clock()
                    await attempt.limiter.hold(f"slack:ch:{workspace}:{target}", self.limits.channel, now,
                                               seconds or 1.0)
                return Outcome(RETRY, "slack: ratelimited", seconds)
            if status >= 500:
                job.slack.post_unknown = True
                return Outcome(RETRY, f"slack: HTTP {status}")
            if error in AUTH_ERRORS:
                now_stored = await self.tokens.fresh(attempt.redis, workspace)
                if now_stored is None:
                    return Outcome(FAILED, f"slack: {error}: the app is not installed in workspace "
                                           f"{workspace[:32]} (uninstalled?)")
                if now_stored != token:
                    return Outcome(RETRY, f"slack: {error} (the workspace's token has changed since)")
            if error in PERMANENT:
                return Outcome(FAILED, f"slack: {error}")
            return Outcome(RETRY, f"slack: {error or status}")
        except (TimeoutError, aiohttp.ClientError) as e:  # unknown outcome: the next attempt checks first
            job.slack.post_unknown = True
            return Outcome(RETRY, f"slack: {type(e).__name__}")
        except SlackRequestError:  # the file's upload refused: nothing was shared
            return Outcome(RETRY, "slack: upload failed")
