"""The worker's scripts by content version: a job is rendered with the script it was committed with.

Each job records the version of the diagnosis script its outputs were committed with
(:attr:`conversations.jobs.Job.content`; the committing process stored that script's text in Redis with
its first such commit, :meth:`bot.outbox.Outbox.content_for`). :meth:`Scripts.of` gives the worker's own script when the
versions match (or the job records none: a job of the first shape), else reads the other version from
Redis once and keeps it (the last few). So a reply committed before the content file was edited, and
delivered by a worker started after, keeps its wording.

A version Redis does not have (stored by no process: a Redis that lost its data) or no longer checks
(a stored script the running code refuses) falls back to the worker's own script, logged once.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from conversations import keys
from conversations.content import Script, from_stored
from conversations.errors import ContentError
from conversations.redis_ops import async_runner

log = logging.getLogger(__name__)
KEPT = 8  # other versions kept in memory


class Scripts:
    def __init__(self, own: Script, *, kept: int = KEPT) -> None:
        self.own = own
        self.kept = kept
        self._others: OrderedDict[str, Script] = OrderedDict()
        self._missing: set[str] = set()  # versions already said to be missing (logged once)

    async def of(self, client: Any, version: str, var: str = "") -> Script:
        """The script of ``version`` (read with the worker's Redis runner, or a redis.asyncio client, when it
        is not at hand), as a diagnosis with the experiments' variants ``var`` reads it (Job.var). Raises
        StoreUnavailable when Redis does not answer (the job is tried again)."""
        found = await self._of(client, version)
        return found.varied(var) if var else found

    async def _of(self, client: Any, version: str) -> Script:
        if not version or version == self.own.version:
            return self.own
        found = self._others.get(version)
        if found is not None:
            self._others.move_to_end(version)
            return found
        raw = await async_runner(client).get(keys.content(version))
        if raw is None:
            self._fall_back(version, "not stored")
            return self.own
        try:
            found = from_stored(version, raw)
        except ContentError as e:
            self._fall_back(version, str(e))
            return self.own
        self._others[version] = found
        while len(self._others) > self.kept:
            self._others.popitem(last=False)
        return found

    def _fall_back(self, version: str, why: str) -> None:
        if version not in self._missing:
            self._missing.add(version)
            log.warning("worker: content version %s: %s; its jobs are rendered with this worker's script (%s)",
                        version[:20], why[:200], self.own.version)
