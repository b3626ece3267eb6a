"""Logging helpers: user IDs appear in logs only as a short hash."""

from __future__ import annotations

import hashlib
import logging


def uid(user_id: str) -> str:
    """A short, stable, non-reversible tag for a user ID (for log lines)."""
    return "u#" + hashlib.sha256(user_id.encode()).hexdigest()[:10]


def setup(level: str = "INFO") -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
