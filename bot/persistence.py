"""Can Redis persist? A full disk (or any failing write of its files) in plain words.

A Redis that cannot write its append-only file (``aof_last_write_status:err``) or its last snapshot
(``rdb_last_bgsave_status:err``, with save points) refuses every write with ``MISCONF ...`` (a
StoreUnavailable naming it, from the runners of :mod:`conversations.redis_ops`). It says so in
``INFO persistence``:
:func:`persistence_problem` reads it (every node of a Cluster), ``/healthz`` answers 503 with it
(:mod:`bot.health`), and every process logs it at start-up with what to do
(:func:`log_if_cannot_persist`). Redis retries by itself (the AOF every second; the snapshot at its
next save point): once there is space again, writes resume.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.config import Config
from conversations.errors import StoreUnavailable
from conversations.redis_ops import misconf, runner

log = logging.getLogger(__name__)

FIELDS = ("aof_last_write_status", "rdb_last_bgsave_status")  # "err" in either: writes refused (MISCONF)
SHORT = "redis: cannot persist (disk full?)"


def persistence_problem(client: Any) -> str | None:
    """``"aof_last_write_status=err, ..."`` when Redis reports a failed write of its files, else None.
    StoreUnavailable when it does not answer."""
    r = runner(client)
    try:
        # a Cluster answers INFO from one node unless told: every primary here (a dict per node)
        info = r.info("persistence", target_nodes=r.PRIMARIES) if r.cluster else r.info("persistence")
    except StoreUnavailable as e:
        # Redis 6 refuses PING too while it cannot persist, and redis-py sends one to check a connection
        # that was idle: its MISCONF answer says what INFO would (a fixed text, never data)
        refusal = misconf(e)
        if refusal is not None:
            return _misconf(refusal)
        raise
    nodes = list(info.values()) if info and all(isinstance(v, dict) for v in info.values()) else [info]
    failed = sorted({field for node in nodes for field in FIELDS if str(node.get(field, "ok")) == "err"})
    return ", ".join(f"{field}=err" for field in failed) or None


def _misconf(message: str) -> str:
    """The fields :func:`persistence_problem` names, from a MISCONF refusal's text."""
    if "AOF" in message:
        reason = message.partition("AOF file:")[2].strip()[:80]
        return "aof_last_write_status=err" + (f" ({reason})" if reason else "")
    return "rdb_last_bgsave_status=err"


def where_to_free(config: Config) -> str:
    if config.redis_url:
        return "on the Redis server's disk (its `dir`, see its log)"
    return f"in {config.data_dir} (the embedded Redis's data; its log: {config.data_dir / 'redis.log'})"


def log_if_cannot_persist(client: Any, config: Config) -> str | None:
    """At start-up: one ERROR line saying what is wrong and what to do, if Redis cannot persist.
    Returns the problem (None: fine, or Redis not answering, which is reported where it is used)."""
    try:
        problem = persistence_problem(client)
    except StoreUnavailable:
        return None
    if problem:
        log.error("%s: %s; it refuses every write (MISCONF) until it can write again. Free space %s: "
                  "Redis retries on its own and writes resume", SHORT, problem, where_to_free(config))
    return problem
