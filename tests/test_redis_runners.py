"""The Redis runners (conversations/redis_ops.py): the one place redis-py's errors are translated, and
the plans both runners execute alike. The first test greps the product: a redis-py error named, caught
or translated anywhere else fails it."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from conversations.errors import StoreUnavailable
from conversations.redis_ops import (
    AsyncRunner,
    Batch,
    Eval,
    Plan,
    Runner,
    async_runner,
    call,
    misconf,
    refusal,
    runner,
    text,
    unreachable,
    write_then_script,
)

ROOT = Path(__file__).resolve().parents[1]
RUNNERS = {"conversations/redis_ops.py"}  # the runner module: the one place allowed

# What handling or translating a redis-py error looks like: its exception classes named (``redis.RedisError``,
# ``redis.ConnectionError``, ``redis.exceptions...``, ``ResponseError``, ``NoScriptError`` ...), imported from
# redis, or the translation helper used.
FORBIDDEN = re.compile(
    r"\bredis\.(?:asyncio\.)?(?:\w*Error|\w*Exception|exceptions)\b"
    r"|\b(?:RedisError|ResponseError|NoScriptError|WatchError|BusyLoadingError|RedisClusterException"
    r"|ClusterCrossSlotError|ClusterDownError|MovedError|AskError|TryAgainError|ReadOnlyError)\b"
    r"|from\s+redis[\w.]*\s+import\s+[^\n]*\b(?:\w*Error|\w*Exception)\b"
    r"|\btranslated\("
)
# A lease of 30 s written as a literal: the one lease setting is conversations.jobs.LEASE (CRMBOT_OUTBOX_LEASE).
LEASE_LITERAL = re.compile(r"(?i)\b\w*lease\w*\s*(?::\s*[\w.| ]+)?=\s*30(?:\.0)?\b")


def offences(source: str, pattern: re.Pattern[str] = FORBIDDEN) -> list[str]:
    """The lines of ``source`` that match ``pattern``, as ``<line>: <text>``."""
    return [f"{n}: {line.strip()}" for n, line in enumerate(source.splitlines(), 1) if pattern.search(line)]


def product_files() -> Iterator[tuple[str, str]]:
    for package in ("bot", "conversations", "scoring"):
        for path in sorted((ROOT / package).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def test_the_grep_finds_what_it_looks_for() -> None:
    caught = {
        "except redis.RedisError as e:": True,
        "except (StoreUnavailable, redis.ConnectionError):": True,
        "if isinstance(e, redis.exceptions.ResponseError):": True,
        "from redis.exceptions import NoScriptError": True,
        "from redis import ConnectionError as RCE": True,
        "with translated(): x = 1": True,
        "except StoreUnavailable:": False,
        "import redis.asyncio as aredis": False,
        "aredis.Redis.from_url(url)": False,
        "except ConnectionRefusedError:": False,
    }
    for line, expected in caught.items():
        assert bool(offences(line)) is expected, line
    assert offences("    lease: float = 30.0,", LEASE_LITERAL) and offences("POST_LEASE = 30", LEASE_LITERAL)
    assert not offences("    lease: float = LEASE,", LEASE_LITERAL)


def test_no_redis_py_error_is_handled_outside_the_runners() -> None:
    found = {name: lines for name, src in product_files() if name not in RUNNERS and (lines := offences(src))}
    assert found == {}, "redis-py errors handled outside conversations/redis_ops.py (use a runner): " + repr(found)
    runners = (ROOT / "conversations/redis_ops.py").read_text(encoding="utf-8")
    assert offences(runners), "the runner module is where they are translated"


def test_the_30_s_lease_is_written_once() -> None:
    found = {name: [line.partition(": ")[2] for line in lines] for name, src in product_files()
             if (lines := offences(src, LEASE_LITERAL))}
    assert found == {"conversations/jobs.py": ["LEASE = 30"]}


# ---- the runners ------------------------------------------------------------------------------------------

SET_AND_COUNT = """
redis.call('SET', KEYS[1], ARGV[1])
return redis.call('INCR', KEYS[2])
"""


def a_plan(tag: str) -> Plan[list[Any]]:
    """Every kind of step, and one of the caller's own."""
    seen: list[Any] = []
    seen.append((yield call("set", f"t:{{{tag}}}:a", "1")))
    seen.append((yield Batch(lambda p: (p.incr(f"t:{{{tag}}}:n"), p.incr(f"t:{{{tag}}}:n")))))
    seen.append((yield Eval(SET_AND_COUNT, [f"t:{{{tag}}}:b", f"t:{{{tag}}}:n"], ["x"])))
    seen.append((yield "ask the caller"))
    seen.append(text((yield call("get", f"t:{{{tag}}}:b"))))
    return seen


def test_both_runners_run_the_same_plan_alike(r: redis.Redis, redis_url: str) -> None:
    asked: list[Any] = []

    def other(step: Any) -> str:
        asked.append(step)
        return "answered"

    sync = Runner(r).run(a_plan("s"), other)

    async def run_async() -> list[Any]:
        client = aredis.Redis.from_url(redis_url)
        try:
            async def answer(step: Any) -> str:
                asked.append(step)
                return "answered"

            return await AsyncRunner(client).run(a_plan("a"), answer)
        finally:
            await client.aclose()

    assert sync == asyncio.run(run_async()) == [True, [1, 2], 3, "answered", "x"]
    assert asked == ["ask the caller", "ask the caller"]
    assert {k: r.get(k) for k in ("t:{s}:b", "t:{a}:b")} == {"t:{s}:b": b"x", "t:{a}:b": b"x"}


def holding(tag: str) -> Plan[None]:
    """Takes a lock, runs a failing script, and lets the lock go in its finally."""
    yield call("set", f"lock:{{{tag}}}", "me")
    try:
        yield Eval("return redis.call('INCR', KEYS[1])", [f"lock:{{{tag}}}"])  # INCR of "me": refused
    finally:
        yield call("delete", f"lock:{{{tag}}}")


def test_a_failed_step_is_thrown_into_the_plan_and_its_finally_still_runs(r: redis.Redis, redis_url: str) -> None:
    with pytest.raises(StoreUnavailable, match=r"^redis: ResponseError$") as sync:
        Runner(r).run(holding("s"))
    assert isinstance(sync.value.__cause__, redis.ResponseError)

    async def run_async() -> None:
        client = aredis.Redis.from_url(redis_url)
        try:
            await AsyncRunner(client).run(holding("a"))
        finally:
            await client.aclose()

    with pytest.raises(StoreUnavailable, match=r"^redis: ResponseError$"):
        asyncio.run(run_async())
    assert not r.exists("lock:{s}", "lock:{a}")  # both let go


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_every_call_on_the_sync_runner_translates() -> None:
    dead = Runner(redis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2,
                              retry=Retry(NoBackoff(), 0)))
    attempts: list[Any] = [
        lambda: dead.get("k"),
        lambda: list(dead.scan_iter(match="*")),  # an iterator fails while it is iterated
        lambda: dead.script("return 1")(keys=[], args=[]),
        lambda: dead.run(a_plan("d"), lambda s: None),
        lambda: dead.write_then_script("return 1", keys=["k"], args=[], before=lambda p: p.set("x", "1")),
    ]

    def piped() -> None:
        with dead.pipeline() as p:
            p.get("k")
            p.execute()

    for attempt in [*attempts, piped]:
        with pytest.raises(StoreUnavailable, match=r"^redis: ConnectionError$") as info:
            attempt()
        assert unreachable(info.value) and refusal(info.value) is None and misconf(info.value) is None
    dead.raw.close()


def test_every_call_on_the_async_runner_translates() -> None:
    async def attempts() -> list[BaseException]:
        dead = AsyncRunner(aredis.Redis(port=free_port(), socket_connect_timeout=0.2, socket_timeout=0.2,
                                        retry=AsyncRetry(NoBackoff(), 0)))
        caught: list[BaseException] = []

        async def scan() -> None:
            async for _ in dead.scan_iter(match="*"):
                pass

        async def piped() -> None:
            async with dead.pipeline() as p:
                p.get("k")
                await p.execute()

        for attempt in (lambda: dead.get("k"), scan, lambda: dead.script("return 1")(keys=[], args=[]),
                        lambda: dead.run(a_plan("d"), lambda s: None), piped,
                        lambda: dead.write_then_script("return 1", keys=["k"], args=[])):
            try:
                await attempt()
            except BaseException as e:  # collected for the assertion below
                caught.append(e)
        await dead.raw.aclose()
        return caught

    caught = asyncio.run(attempts())
    assert len(caught) == 6
    assert all(isinstance(e, StoreUnavailable) and unreachable(e) for e in caught), caught


def test_a_refusal_is_told_apart_from_no_answer() -> None:
    def translated_from(error: Exception) -> StoreUnavailable:
        try:
            raise StoreUnavailable("redis: ...") from error
        except StoreUnavailable as e:
            return e

    disk = translated_from(redis.ResponseError("MISCONF Errors writing to the AOF file: No space left on device"))
    assert misconf(disk) == "MISCONF Errors writing to the AOF file: No space left on device"
    assert refusal(disk) is not None and not unreachable(disk)
    loading = translated_from(redis.BusyLoadingError("loading"))
    assert unreachable(loading) and refusal(loading) is None
    assert unreachable(translated_from(redis.TimeoutError())) and misconf(translated_from(redis.TimeoutError())) is None


def test_a_runner_wraps_once_and_passes_attributes_through(r: redis.Redis) -> None:
    once = runner(r)
    assert runner(once) is once and Runner(once).raw is r and once.connection_pool is r.connection_pool
    assert not once.cluster and async_runner(async_runner(aredis.Redis())).raw.__class__ is aredis.Redis


def test_write_then_script_is_one_pipeline_with_eval_on_one_server_and_three_steps_on_a_cluster() -> None:
    def writes(p: Any) -> None:
        p.set("mark", "1")

    one = write_then_script(False, SET_AND_COUNT, keys=["a", "n"], args=["x"], before=writes, after=writes)
    step = next(one)
    assert isinstance(step, Batch)

    class Recorder:
        def __init__(self) -> None:
            self.command_stack: list[tuple[Any, ...]] = []

        def __getattr__(self, name: str) -> Any:
            return lambda *args, **kw: self.command_stack.append((name, *args))

    pipe = Recorder()
    step.fill(pipe)
    assert [c[0] for c in pipe.command_stack] == ["set", "eval", "set"]  # EVAL with its body, never EVALSHA
    assert pipe.command_stack[1][1] == SET_AND_COUNT
    with pytest.raises(StopIteration) as done:
        one.send(["OK", 7, "OK"])
    assert done.value.value == 7  # the script's own reply

    cluster = write_then_script(True, SET_AND_COUNT, keys=["a", "n"], args=["x"], before=writes, after=writes)
    first = next(cluster)
    second = cluster.send([True])
    third = cluster.send(5)
    assert isinstance(first, Batch) and isinstance(second, Eval) and isinstance(third, Batch)
    assert (second.lua, list(second.keys), list(second.args)) == (SET_AND_COUNT, ["a", "n"], ["x"])
    with pytest.raises(StopIteration) as done:
        cluster.send([True])
    assert done.value.value == 5
