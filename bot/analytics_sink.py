"""The worker side of the operator's figures: each figures record is applied from its own queue entry.

The core commits what each step changed for the operator (:func:`conversations.analytics.delta_of`) as a
figures record in the user's hash slot, by the same Lua script as the step (never inside a message: a
step with nothing to say commits its figures alone). The worker claims a record like a job and hands it
to :meth:`StatsSink.count`, which applies it with the worker's Redis runner (one Lua script in the
person's figures shard ``{stats:<k>}``, idempotent: the lead's hash says what the diagnosis was counted
for already, so a retried or recovered record applies again and nothing counts twice); then the record
is gone. Round trips: a record with no hook to call is applied in the worker's round trip that deletes
it (:meth:`StatsSink.steps`, before the deletion); else one for the apply script, with the experiments'
counts of a record that has variants in the same pipeline; a finished diagnosis' lead and display name
for ``on_finished`` are read in one more.

Jobs of the first shape (committed before figures had records of their own) carry their step's figures
in them: :meth:`StatsSink.count_legacy` applies them before the job is delivered, as it always was. Such
a job an unfollow set aside ("x-<id>" in the mailbox, see conversations.store) is never sent: the
unfollow's figures apply its figures and delete it.

``on_first_consult(lead)``: called (in a thread: it is sync) when a consultation request is first
applied to a lead; once it returns the lead is marked notified. A hook that fails is tried again by a
later attempt; one that ran but whose worker died before marking it may run twice, so it must be
idempotent itself (bot/operator.py queues its post with a ledger mark).

``on_finished(lead)``: called (in a thread) each time figures of a finished diagnosis are applied (the
finishing step, and any later one about it, such as a consultation request): it must be idempotent (the
client's webhooks, bot/webhooks.py, queue ``diagnosis.completed`` once per lead and endpoint with a ledger
mark). Redis failing in it makes the record be tried again; any other failure is logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.logs import uid
from conversations import analytics, experiments, jobs
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.jobs import Figures, Job
from conversations.redis_ops import Eval, async_runner, text
from conversations.store import SET_ASIDE

log = logging.getLogger(__name__)
ConsultHook = Callable[[analytics.Lead], None]
FinishedHook = Callable[[analytics.Lead], Any]


class StatsSink:
    """The worker's figures sink (bot.worker.FiguresSink)."""

    def __init__(self, *, expiry: float = 7 * 86400, on_first_consult: ConsultHook | None = None,
                 clock: Callable[[], float] | None = None, on_finished: FinishedHook | None = None) -> None:
        self.expiry = expiry
        self.on_first_consult = on_first_consult
        self.on_finished = on_finished
        self.clock = clock

    async def count(self, client: Any, figures: Figures, now: float) -> None:
        """Apply one figures record (and, for an unfollow, the first-shape jobs it set aside)."""
        await self._counted(client, figures.tag, figures.id, figures.delta, now)

    def steps(self, figures: Figures, now: float) -> list[Eval] | None:
        """The Redis steps that apply ``figures`` when nothing is to be done after them: the worker sends
        them in the round trip that deletes the record, before the deletion (one round trip fewer; applying
        is idempotent, so a record whose deletion is lost applies again harmlessly). None: a record that
        needs :meth:`count` (an unfollow's set-aside jobs, a hook to call: a consultation request with
        ``on_first_consult``, a finished diagnosis with ``on_finished``). [] for a bad record (logged,
        dropped, as :meth:`count` drops it)."""
        delta = figures.delta
        lead = delta.get("lead")
        if delta.get("follow") == 0:
            return None
        if isinstance(lead, Mapping) and ((lead.get("consult") and self.on_first_consult is not None) or (
                lead.get("finished") and self.on_finished is not None and not delta.get("test"))):
            return None
        now = self.clock() if self.clock is not None else now
        try:
            return [*experiments.count_steps(delta), analytics.apply_step(delta, now, self.expiry)]
        except Exception:  # a bad delta is dropped (and never costs the user a reply)
            log.exception("stats: could not apply the figures of %s for %s", figures.id[:10], uid(figures.to))
            return []

    async def count_legacy(self, client: Any, job: Job, now: float) -> None:
        """Apply the figures a first-shape job carries, before it is delivered."""
        if job.legacy_figures is not None:
            await self._counted(client, job.tag, job.id, job.legacy_figures, now)

    async def _counted(self, client: Any, tag: str, record_id: str, delta: Mapping[str, Any], now: float) -> None:
        now = self.clock() if self.clock is not None else now
        try:
            if delta.get("follow") == 0:
                await self._set_aside(client, tag, now)
            await self.apply(client, delta, now)
        except StoreUnavailable:
            raise  # tried again: applying is idempotent
        except Exception:  # a bad delta is dropped (and never costs the user a reply)
            log.exception("stats: could not apply the figures of %s for %s", record_id[:10],
                          uid(tag.rpartition(":")[2]))

    async def apply(self, client: Any, delta: Mapping[str, Any], now: float) -> None:
        client = async_runner(client)
        if int(await self._applied(client, delta, now)) and self.on_first_consult is not None:
            await self._notify(client, str(delta["lead"]["id"]), now)
        lead = delta.get("lead")
        if self.on_finished is not None and isinstance(lead, dict) and lead.get("finished") and not delta.get("test"):
            found = await self._lead(client, str(lead["id"]))
            if found is not None and found.is_finished:
                await asyncio.to_thread(self.on_finished, found)

    async def _applied(self, client: Any, delta: Mapping[str, Any], now: float) -> Any:
        """The record's :data:`APPLY_LUA` and the experiments' counts it adds (idempotent sets, in their own
        slots) in one round trip (on a Cluster, one per node); the script's reply. Only a record with variants
        has counts."""
        step = analytics.apply_step(delta, now, self.expiry)
        counted = experiments.count_steps(delta)
        if not counted:
            return await client.do(step)
        return await client.write_then_script(step.lua, keys=step.keys, args=step.args, first=counted)

    async def _lead(self, client: Any, lead_id: str) -> analytics.Lead | None:
        """The lead and its person's display name (one slot: one round trip)."""
        person = lead_id.rsplit(":", 1)[0]
        async with client.pipeline(transaction=False) as p:
            p.hgetall(analytics.lead_key(lead_id))
            p.hget(analytics.people_key(analytics.shard_of_person(person)), person)
            raw, kept = await p.execute()
        h = {text(k): text(v) for k, v in raw.items()}
        return analytics.Lead.from_hash(lead_id, h, analytics.parse_person(kept).name)

    async def _notify(self, client: Any, lead_id: str, now: float) -> None:
        lead = await self._lead(client, lead_id)
        if lead is None or self.on_first_consult is None:
            return
        try:
            await asyncio.to_thread(self.on_first_consult, lead)
        except Exception as e:
            await client.hset(analytics.lead_key(lead_id), "cn", "0")  # a later attempt tries again
            if isinstance(e, StoreUnavailable):
                raise
            log.exception("stats: the consultation hook failed for %s", uid(lead.user_id))
            return
        await client.do(analytics.notified_step(lead_id))

    async def _set_aside(self, client: Any, tag: str, now: float) -> None:
        """First-shape jobs an unfollow set aside: their figures count, then they go (never sent)."""
        client = async_runner(client)
        box = jobs.mailbox(tag)
        raw = await client.hgetall(box)
        aside = {text(k): v for k, v in raw.items() if text(k).startswith(SET_ASIDE)}
        pending = []
        for field, value in aside.items():
            try:
                pending.append(Job.from_json(value))
            except InvalidInput:
                log.warning("stats: a set-aside job %s is not a job; dropped", field[:12])
        for old in sorted(pending, key=lambda j: j.received):
            if old.legacy_figures is not None:
                await self.apply(client, old.legacy_figures, now)
        if aside:
            await client.hdel(box, *aside)
