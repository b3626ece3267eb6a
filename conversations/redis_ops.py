"""The Redis runners: every Redis call of the product goes through one of them, and they are the one
place where redis-py's errors become ours (:class:`~conversations.errors.StoreUnavailable`).

* :class:`Runner` over a redis-py client (``redis.Redis`` or ``RedisCluster``): the web tier, the
  clock, the console, the CLI;
* :class:`AsyncRunner` over a ``redis.asyncio`` client (plain or Cluster): the worker and its transports.

Each is a thin proxy. A command (``r.get(...)``, ``r.hset(...)``, ``r.scan_iter(...)``) runs the
client's own, and a redis-py error leaves it as StoreUnavailable, naming the error's type only (a
server's message may quote data; :func:`describe`). ``r.pipeline()`` gives the client's pipeline, its
``execute()`` translated the same way; ``r.script(LUA)`` a callable that runs a Lua script
(by ``EVAL`` with its body, never ``EVALSHA``: :class:`EvalScript`); ``r.raw`` the client itself
(for a test, or a library that wants one).

**Operations of several steps are written once**, as *plans* (sans-IO): a generator that yields
steps and is sent each step's result. A step is a :class:`Call` (one command), a :class:`Batch`
(commands queued on a pipeline, one round trip), an :class:`Eval` (a Lua script), or a step of the
caller's own (a token refresh at Slack, a pause), which the runner hands to the ``other`` handler
the caller gives :meth:`Runner.run`. Both runners execute the same plans, so the sync and the async
tier cannot drift apart: :func:`write_then_script` here, the installations' operations and the
token rotation in :mod:`conversations.installations` and :mod:`bot.slack.tokens`. An error of a
step is thrown into the plan at the point that yielded it (its ``finally`` still runs its steps).

The product's keys are built for Redis Cluster (one user's or team's keys share a hash slot, see
:mod:`conversations.keys`); the one difference callers see is :func:`write_then_script`.
``tests/test_redis_runners.py`` fails when a redis-py error is named outside this module.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from conversations.errors import ConfigError, StoreUnavailable

T = TypeVar("T")
Pipe = Any  # a redis-py pipeline (plain or cluster, sync or asyncio): what a Batch's fill queues on
Plan = Generator[Any, Any, T]  # yields steps, is sent their results, returns the operation's answer

# ---- translation: the one place ----------------------------------------------------------------------


@contextmanager
def translated() -> Iterator[None]:
    """Run Redis calls; a redis-py error leaves as :class:`StoreUnavailable` (naming its type only:
    a server's message may quote data). The runners' own; nothing else uses it."""
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


def _cause(error: BaseException) -> BaseException:
    return error.__cause__ if isinstance(error, StoreUnavailable) and error.__cause__ is not None else error


def misconf(error: BaseException) -> str | None:
    """The text of the MISCONF refusal behind ``error`` (a fixed text of Redis's, never data), or None."""
    cause = _cause(error)
    if isinstance(cause, redis.ResponseError) and str(cause).startswith("MISCONF"):
        return str(cause)
    return None


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


def unreachable(error: BaseException) -> bool:
    """Whether ``error`` means Redis did not answer (no connection, a timeout, still loading its data),
    as opposed to an answer that refused the command."""
    return isinstance(_cause(error), redis.ConnectionError | redis.TimeoutError)


def refusal(error: BaseException) -> str | None:
    """The first words of the server's refusal behind ``error`` (an error reply), or None. For a
    server's own commands (SHUTDOWN), never data."""
    cause = _cause(error)
    return str(cause)[:80] if isinstance(cause, redis.ResponseError) else None


# ---- connecting ----------------------------------------------------------------------------------------


def cluster_client(url: str, **options: Any) -> Any:
    """A Redis Cluster client seeded from one node's URL; ConfigError when it cannot be (e.g. a database
    number other than 0, or no node reachable)."""
    try:
        return RedisCluster.from_url(url, **options)
    except RedisClusterException as e:
        raise ConfigError(f"environment: REDIS_URL with REDIS_CLUSTER=1: {e}") from e


def reconnect_once() -> dict[str, Any]:
    """redis.asyncio options: a connection the server closed (a restart) is made again once before the
    call fails."""
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    return {"retry": Retry(ExponentialBackoff(cap=1.0), 2),
            "retry_on_error": [redis.ConnectionError, redis.TimeoutError]}


# ---- steps -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One command: the client's method ``name`` with these arguments. Result: its reply."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def call(name: str, *args: Any, **kwargs: Any) -> Call:
    return Call(name, args, kwargs)


@dataclass(frozen=True)
class Batch:
    """Commands queued by ``fill(pipe)``, sent in one round trip (MULTI/EXEC with ``transaction``).
    Result: their replies, in order. Nothing queued: no round trip."""

    fill: Callable[[Pipe], None]
    transaction: bool = False


@dataclass(frozen=True)
class Eval:
    """A Lua script (its KEYS and ARGV documented beside its text) over ``keys``, all in one hash slot.
    Sent as EVAL with its body (:class:`EvalScript`): never NOSCRIPT. Result: the script's reply."""

    lua: str
    keys: Sequence[Any] = ()
    args: Sequence[Any] = ()


STEPS = (Call, Batch, Eval)


def write_then_script(cluster: bool, lua: str, *, keys: Sequence[str], args: Sequence[Any],
                      before: Callable[[Pipe], None] | None = None,
                      after: Callable[[Pipe], None] | None = None,
                      first: Sequence[Eval] = ()) -> Plan[Any]:
    """Queue writes to keys of other hash slots (``before(pipe)``), run the script ``lua`` over ``keys``
    (all in one hash slot), then queue ``after(pipe)``; answers the script's result. The writes of
    ``before`` land before the script and those of ``after`` after it, whatever the script answers.
    ``first``: other scripts, each over a hash slot of its own (a job riding on a step's commit, see
    conversations.jobs.Once), run after ``before`` and before ``lua``, whatever they answer (unreturned).

    One server: one pipelined round trip, in that order. The script goes as EVAL with its body, never
    EVALSHA: a server that lost its script cache (a restart, a failover, ``SCRIPT FLUSH``) would answer
    NOSCRIPT to the script alone while still running the pipeline's other writes, so a hint would
    name a job that was never committed. Redis caches an EVAL'd script by its SHA1, so the cost is
    the body's bytes on the wire.
    Cluster: redis-py refuses EVALSHA inside a cluster pipeline, and a pipeline spread over several
    nodes has no order between them, so ``before`` goes first (one round trip, split per node), the
    script runs as a call of its own on the node owning ``keys`` (an EVAL too: no NOSCRIPT from a node
    that lost its script cache), and ``after`` follows it.
    """
    if not cluster:
        at: list[int] = []

        def fill(p: Pipe) -> None:
            if before is not None:
                before(p)
            for other in first:
                p.eval(other.lua, len(other.keys), *other.keys, *other.args)
            p.eval(lua, len(keys), *keys, *args)
            at.append(len(p.command_stack) - 1)
            if after is not None:
                after(p)

        replies = yield Batch(fill)
        return replies[at[0]]
    if before is not None:
        yield Batch(before)  # nothing queued: no round trip
    for other in first:  # not "yield from": each step is sent its reply, which a list's iterator cannot take
        _unused = yield other
    result = yield Eval(lua, keys, args)
    if after is not None:
        yield Batch(after)
    return result


# ---- the sync runner ------------------------------------------------------------------------------------


def _translated_iter(items: Iterator[Any]) -> Iterator[Any]:
    with translated():
        yield from items


class Runner:
    """Runs Redis commands, scripts and plans on a redis-py client (see the module's doc)."""

    def __init__(self, client: Any) -> None:
        self.raw: Any = client.raw if isinstance(client, Runner) else client
        self.cluster = isinstance(self.raw, RedisCluster)
        self._scripts: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        attr = getattr(self.raw, name)
        if not callable(attr):
            return attr

        def command(*args: Any, **kwargs: Any) -> Any:
            with translated():
                result = attr(*args, **kwargs)
            return _translated_iter(result) if inspect.isgenerator(result) else result

        return command

    @contextmanager
    def pipeline(self, transaction: bool = False) -> Iterator[Pipe]:
        with translated(), self.raw.pipeline(transaction=transaction) as p:
            yield p

    def script(self, lua: str) -> Callable[..., Any]:
        """A callable ``(keys=..., args=...)`` running the Lua script ``lua`` (by EVAL: see EvalScript)."""
        registered = self._scripts.get(lua)
        if registered is None:
            registered = self._scripts[lua] = EvalScript(self.raw, lua)

        def run(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
            with translated():
                return registered(keys=list(keys), args=list(args))

        return run

    register_script = script

    def do(self, step: Any) -> Any:
        """One step's result."""
        if isinstance(step, Call):
            with translated():
                return getattr(self.raw, step.name)(*step.args, **step.kwargs)
        if isinstance(step, Eval):
            return self.script(step.lua)(step.keys, step.args)
        if isinstance(step, Batch):
            with self.pipeline(step.transaction) as p:
                step.fill(p)
                return p.execute()
        raise TypeError(f"not a Redis step: {type(step).__name__}")

    def run(self, plan: Plan[T], other: Callable[[Any], Any] | None = None) -> T:
        """Execute ``plan``: its Redis steps here, any other step by ``other``; returns its answer."""
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = plan.send(reply) if error is None else plan.throw(error)
            except StopIteration as done:
                return done.value
            try:
                reply = self.do(step) if other is None or isinstance(step, STEPS) else other(step)
                error = None
            except BaseException as e:  # thrown into the plan: its finally runs its own steps
                reply, error = None, e

    def write_then_script(self, lua: str, *, keys: Sequence[str], args: Sequence[Any],
                          before: Callable[[Pipe], None] | None = None,
                          after: Callable[[Pipe], None] | None = None, first: Sequence[Eval] = ()) -> Any:
        """:func:`write_then_script` on this runner's server (one, or a Cluster)."""
        return self.run(write_then_script(self.cluster, lua, keys=keys, args=args, before=before, after=after,
                                          first=first))

    def nodes(self) -> list[tuple[str, Runner]]:
        """(name, runner) of every node holding keys: the one server, or each primary of a Cluster."""
        if self.cluster:
            with translated():
                return [(node.name, Runner(self.raw.get_redis_connection(node))) for node in self.raw.get_primaries()]
        return [("", self)]


def runner(client: Any) -> Runner:
    """``client`` as a :class:`Runner` (itself when it is one)."""
    return client if isinstance(client, Runner) else Runner(client)


# ---- the async runner -----------------------------------------------------------------------------------


async def _awaited(result: Any) -> Any:
    with translated():
        return await result


async def _translated_aiter(items: AsyncIterator[Any]) -> AsyncIterator[Any]:
    with translated():
        async for item in items:
            yield item


class AsyncRunner:
    """:class:`Runner` for a redis.asyncio client: the same commands, scripts and plans, awaited."""

    def __init__(self, client: Any) -> None:
        from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

        self.raw: Any = client.raw if isinstance(client, AsyncRunner) else client
        self.cluster = isinstance(self.raw, AsyncRedisCluster)
        self._scripts: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "raw":
            raise AttributeError(name)
        attr = getattr(self.raw, name)
        if not callable(attr):
            return attr

        def command(*args: Any, **kwargs: Any) -> Any:
            with translated():
                result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return _awaited(result)
            return _translated_aiter(result) if inspect.isasyncgen(result) else result

        return command

    @asynccontextmanager
    async def pipeline(self, transaction: bool = False) -> AsyncIterator[Pipe]:
        with translated():
            async with self.raw.pipeline(transaction=transaction) as p:
                yield p

    def script(self, lua: str) -> Callable[..., Any]:
        """An async callable ``(keys=..., args=...)`` running the Lua script ``lua``."""
        registered = self._scripts.get(lua)
        if registered is None:
            registered = self._scripts[lua] = EvalScript(self.raw, lua)

        async def run(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
            with translated():
                return await registered(keys=list(keys), args=list(args))

        return run

    register_script = script

    async def do(self, step: Any) -> Any:
        if isinstance(step, Call):
            with translated():
                return await getattr(self.raw, step.name)(*step.args, **step.kwargs)
        if isinstance(step, Eval):
            return await self.script(step.lua)(step.keys, step.args)
        if isinstance(step, Batch):
            async with self.pipeline(step.transaction) as p:
                step.fill(p)
                return await p.execute()
        raise TypeError(f"not a Redis step: {type(step).__name__}")

    async def run(self, plan: Plan[T], other: Callable[[Any], Any] | None = None) -> T:
        """:meth:`Runner.run`, awaiting each step (``other`` may answer an awaitable)."""
        reply: Any = None
        error: BaseException | None = None
        while True:
            try:
                step = plan.send(reply) if error is None else plan.throw(error)
            except StopIteration as done:
                return done.value
            try:
                if other is None or isinstance(step, STEPS):
                    reply = await self.do(step)
                else:
                    reply = other(step)
                    if inspect.isawaitable(reply):
                        reply = await reply
                error = None
            except BaseException as e:
                reply, error = None, e

    async def write_then_script(self, lua: str, *, keys: Sequence[str], args: Sequence[Any],
                                before: Callable[[Pipe], None] | None = None,
                                after: Callable[[Pipe], None] | None = None, first: Sequence[Eval] = ()) -> Any:
        return await self.run(write_then_script(self.cluster, lua, keys=keys, args=args, before=before, after=after,
                                                first=first))


def async_runner(client: Any) -> AsyncRunner:
    """``client`` (redis.asyncio) as an :class:`AsyncRunner` (itself when it is one)."""
    return client if isinstance(client, AsyncRunner) else AsyncRunner(client)


# ---- small helpers ---------------------------------------------------------------------------------------


def is_cluster(client: Any) -> bool:
    if isinstance(client, Runner | AsyncRunner):
        return client.cluster
    return isinstance(client, RedisCluster)


def text(value: Any) -> str:
    """A reply as text (clients may answer bytes)."""
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
