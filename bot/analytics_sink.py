"""The worker side of the operator's figures: a job's ``meta["stats"]`` is applied before it is delivered.

The core puts what each step changed for the operator (:func:`conversations.analytics.delta_of`) in
the job it commits; every delivery attempt applies it first with the worker's redis.asyncio client
(one Lua script in the ``{stats}`` slot, idempotent: a retried or recovered job applies it again and
nothing counts twice), then the channel's transport sends as usual. Jobs of channel ``"stats"`` carry
only figures: :class:`StatsTransport` reports them delivered. A job an unfollow set aside
("x-<id>" in the mailbox, see conversations.store) is never sent: the unfollow's own job applies its
figures and deletes it.

``on_first_consult(lead)``: called (in a thread: it is sync) when a consultation request is first
applied to a lead, before the job is delivered; once it returns the lead is marked notified. A hook
that fails is tried again by a later attempt; one that ran but whose worker died before marking it may
run twice, so it must be idempotent itself (bot/operator.py queues its post with a ledger mark).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.logs import uid
from bot.worker import DELIVERED, Attempt, Outcome, Transport
from conversations import analytics as A
from conversations import jobs
from conversations.errors import StoreUnavailable
from conversations.jobs import Job
from conversations.redis_ops import async_runner, text
from conversations.store import SET_ASIDE

log = logging.getLogger(__name__)
STATS_CHANNEL = A.STATS_CHANNEL
ConsultHook = Callable[[A.Lead], None]


class StatsSink:
    def __init__(self, *, expiry: float = 7 * 86400, on_first_consult: ConsultHook | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.expiry = expiry
        self.on_first_consult = on_first_consult
        self.clock = clock

    def wrap(self, transports: Mapping[str, Transport]) -> dict[str, Transport]:
        """Every transport applying each job's figures first, and the "stats" channel."""
        out: dict[str, Transport] = {name: Counting(t, self) for name, t in transports.items()}
        out[STATS_CHANNEL] = Counting(StatsTransport(), self)
        return out

    async def before_delivery(self, attempt: Attempt) -> None:
        """Apply the figures of ``attempt.job`` (and of the jobs an unfollow set aside)."""
        job = attempt.job
        delta = job.meta.get("stats")
        if not isinstance(delta, dict):
            return
        now = (self.clock or attempt.clock)()
        try:
            if delta.get("follow") == 0:
                await self._set_aside(attempt.redis, job, now)
            await self.apply(attempt.redis, delta, now)
        except StoreUnavailable:
            raise  # the attempt is retried: nothing is sent before its figures are counted
        except Exception:  # a bad delta must not cost the user a reply
            log.exception("stats: could not apply the figures of %s for %s", job.id[:8], uid(job.to))

    async def apply(self, client: Any, delta: Mapping[str, Any], now: float) -> None:
        client = async_runner(client)
        if int(await client.do(A.apply_step(delta, now, self.expiry))) and self.on_first_consult is not None:
            await self._notify(client, str(delta["lead"]["id"]), now)

    async def _notify(self, client: Any, lead_id: str, now: float) -> None:
        raw = await client.hgetall(A.lead_key(lead_id))
        h = {text(k): text(v) for k, v in raw.items()}
        name = text(await client.hget(A.NAMES, lead_id.rsplit(":", 1)[0]))
        lead = A.Lead.from_hash(lead_id, h, name)
        if lead is None or self.on_first_consult is None:
            return
        try:
            await asyncio.to_thread(self.on_first_consult, lead)
        except Exception as e:
            await client.hset(A.lead_key(lead_id), "cn", "0")  # a later attempt tries again
            if isinstance(e, StoreUnavailable):
                raise
            log.exception("stats: the consultation hook failed for %s", uid(lead.user_id))
            return
        await client.do(A.notified_step(lead_id))

    async def _set_aside(self, client: Any, job: Job, now: float) -> None:
        client = async_runner(client)
        box = jobs.mailbox(job.tag)
        raw = await client.hgetall(box)
        aside = {text(k): v for k, v in raw.items() if text(k).startswith(SET_ASIDE)}
        pending = []
        for field, value in aside.items():
            try:
                pending.append(Job.from_json(value))
            except (ValueError, TypeError):
                log.warning("stats: a set-aside job %s is not a job; dropped", field[:12])
        for old in sorted(pending, key=lambda j: j.received):
            delta = old.meta.get("stats")
            if isinstance(delta, dict):
                await self.apply(client, delta, now)
        if aside:
            await client.hdel(box, *aside)


class Counting:
    """A transport that applies the job's figures, then lets the real transport deliver it."""

    def __init__(self, inner: Transport, sink: StatsSink) -> None:
        self.inner = inner
        self.sink = sink
        self.channel = inner.channel

    async def deliver(self, attempt: Attempt) -> Outcome:
        await self.sink.before_delivery(attempt)
        return await self.inner.deliver(attempt)

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class StatsTransport:
    """Channel "stats": a job that only carries figures (counted by :class:`Counting`); nothing to send."""

    channel = STATS_CHANNEL

    async def deliver(self, attempt: Attempt) -> Outcome:
        return Outcome(DELIVERED, "figures only")

    async def close(self) -> None:
        return None
