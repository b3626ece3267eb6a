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

from conversations.errors import StoreUnavailable

Pipe = Any  # a redis-py pipeline (plain or cluster)


@contextmanager
def translated() -> Iterator[None]:
    """Run Redis calls; a redis-py error leaves as :class:`StoreUnavailable` (naming its type only:
    a server's message may quote data)."""
    try:
        yield
    except redis.RedisError as e:
        raise StoreUnavailable(describe(e)) from e


def describe(error: BaseException) -> str:
    """A redis-py error in a few words, never the server's message (it may quote data), except the fixed
    text of a refusal to write for want of disk (MISCONF), which says what to do."""
    if isinstance(error, redis.ResponseError) and str(error).startswith("MISCONF"):
        return "redis: cannot persist (MISCONF: disk full?); writes are refused until space is freed"
    return f"redis: {type(error).__name__}"


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def text(value: Any) -> str:
    """A reply as text (clients may answer bytes)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


class EvalScript:
    """A Lua script that runs by ``EVAL`` with its body on every call, never by ``EVALSHA``.

    redis-py's :class:`~redis.commands.core.Script` sends EVALSHA and, when the server answers NOSCRIPT
    (it lost its script cache: a restart, a failover, ``SCRIPT FLUSH``), loads the script and tries once
    more; a second loss between the load and the retry fails the call (with ``SCRIPT FLUSH`` in a loop,
    most calls: tests/resilience/test_script_flush.py). EVAL never depends on the cache; Redis still
    caches the compiled script by its SHA1, so the cost is the body's bytes on the wire. Called as a
    redis-py Script, ``script(keys=[...], args=[...])`` (awaited on a redis.asyncio client); on a
    Cluster the call goes to the node owning its keys."""

    def __init__(self, client: Any, body: str) -> None:
        self.client = client
        self.script = body

    def __call__(self, keys: Sequence[Any] | None = None, args: Sequence[Any] | None = None,
                 client: Any = None) -> Any:
        keys = list(keys or ())
        return (self.client if client is None else client).eval(self.script, len(keys), *keys, *(args or ()))


def register_script(client: Any, body: str) -> EvalScript:
    """The product's way to register a Lua script on ``client`` (sync or asyncio, one server or a
    Cluster): an :class:`EvalScript`, never redis-py's EVALSHA-first ``client.register_script``."""
    return EvalScript(client, body)


def write_then_script(
    client: Any,
    script: EvalScript | Script,
    *,
    keys: Sequence[str],
    args: Sequence[Any],
    before: Callable[[Pipe], None] | None = None,
    after: Callable[[Pipe], None] | None = None,
) -> Any:
    """Queue writes to keys of other hash slots (``before(pipe)``), run ``script`` over ``keys``
    (all in one hash slot), then queue ``after(pipe)``; returns the script's result. The writes of
    ``before`` land before the script and those of ``after`` after it, whatever the script answers.

    One server: one pipelined round trip, in that order. The script goes as EVAL with its body, never
    EVALSHA: a server that lost its script cache (a restart, a failover, ``SCRIPT FLUSH``) would answer
    NOSCRIPT to the script alone while still running the pipeline's other writes, so a hint would
    name a job that was never committed. Redis caches an EVAL'd script by its SHA1, so the cost is
    the body's bytes on the wire.
    Cluster: redis-py refuses EVALSHA inside a cluster pipeline, and a pipeline spread over several
    nodes has no order between them, so ``before`` goes first (one round trip, split per node), the
    script runs as a direct call on the node owning ``keys`` (an EVAL too, with an :class:`EvalScript`:
    no NOSCRIPT from a node that lost its script cache), and ``after`` follows it.
    """
    if not is_cluster(client):
        with client.pipeline(transaction=False) as p:
            if before is not None:
                before(p)
            p.eval(script.script, len(keys), *keys, *args)
            at = len(p.command_stack) - 1
            if after is not None:
                after(p)
            return p.execute()[at]
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
            async with client.pipeline(transaction=False) as p:
                if before is not None:
                    before(p)
                p.eval(script.script, len(keys), *keys, *args)
                at = len(p.command_stack) - 1
                if after is not None:
                    after(p)
                return (await p.execute())[at]
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
        raise StoreUnavailable(describe(e)) from e
