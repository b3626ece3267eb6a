"""Redis operations shared by every store: the one place redis-py's errors become ours, and the
commit helper that places a Lua script between writes to other hash slots.

The product's keys are built for Redis Cluster (one user's or team's keys share a hash slot, see
:mod:`conversations.keys`); the one difference callers see is :func:`write_then_script`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from conversations.errors import StoreUnavailable

Pipe = Any  # a redis-py pipeline (plain or cluster)


@contextmanager
def translated() -> Iterator[None]:
    """Run Redis calls; a redis-py error leaves as :class:`StoreUnavailable` (naming its type only:
    a server's message may quote data)."""
    try:
        yield
    except redis.RedisError as e:
        raise StoreUnavailable(f"redis: {type(e).__name__}") from e


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def text(value: Any) -> str:
    """A reply as text (clients may answer bytes)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def write_then_script(
    client: Any,
    script: Script,
    *,
    keys: Sequence[str],
    args: Sequence[Any],
    before: Callable[[Pipe], None] | None = None,
    after: Callable[[Pipe], None] | None = None,
) -> Any:
    """Queue writes to keys of other hash slots (``before(pipe)``), run ``script`` over ``keys``
    (all in one hash slot), then queue ``after(pipe)``; returns the script's result. The writes of
    ``before`` land before the script and those of ``after`` after it, whatever the script answers.

    One server: one pipelined round trip, in that order (EVALSHA by the script's known SHA1; a server
    that lost its script cache answers NOSCRIPT: the script is loaded and the pipeline sent again,
    its writes being idempotent index entries).
    Cluster: redis-py refuses EVALSHA inside a cluster pipeline, and a pipeline spread over several
    nodes has no order between them, so ``before`` goes first (one round trip, split per node), the
    script runs as a direct call on the node owning ``keys``, and ``after`` follows it.
    """
    if not is_cluster(client):
        for attempt in (1, 2):
            try:
                with client.pipeline(transaction=False) as p:
                    if before is not None:
                        before(p)
                    p.evalsha(script.sha, len(keys), *keys, *args)
                    at = len(p.command_stack) - 1
                    if after is not None:
                        after(p)
                    return p.execute()[at]
            except NoScriptError:
                if attempt == 2:
                    raise
                client.script_load(script.script)
    if before is not None:
        with client.pipeline(transaction=False) as p:
            before(p)
            p.execute()  # nothing queued: no round trip
    result = script(keys=list(keys), args=list(args))
    if after is not None:
        with client.pipeline(transaction=False) as p:
            after(p)
            p.execute()
    return result


def is_async_cluster(client: Any) -> bool:
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    return isinstance(client, AsyncRedisCluster)


async def awrite_then_script(
    client: Any,
    script: Any,
    *,
    keys: Sequence[str],
    args: Sequence[Any],
    before: Callable[[Pipe], None] | None = None,
    after: Callable[[Pipe], None] | None = None,
) -> Any:
    """:func:`write_then_script` for a redis.asyncio client (the worker's)."""
    try:
        if not is_async_cluster(client):
            for attempt in (1, 2):
                try:
                    async with client.pipeline(transaction=False) as p:
                        if before is not None:
                            before(p)
                        p.evalsha(script.sha, len(keys), *keys, *args)
                        at = len(p.command_stack) - 1
                        if after is not None:
                            after(p)
                        return (await p.execute())[at]
                except NoScriptError:
                    if attempt == 2:
                        raise
                    await client.script_load(script.script)
        if before is not None:
            async with client.pipeline(transaction=False) as p:
                before(p)
                await p.execute()
        result = await script(keys=list(keys), args=list(args))
        if after is not None:
            async with client.pipeline(transaction=False) as p:
                after(p)
                await p.execute()
        return result
    except redis.RedisError as e:
        raise StoreUnavailable(f"redis: {type(e).__name__}") from e
