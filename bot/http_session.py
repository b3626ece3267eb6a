"""One aiohttp session made on first use, inside the worker's event loop, and closed with the transport that
owns it: the shared part of the transports that POST to a URL of the operator's (bot/webhooks.py, the client's
endpoints; bot/line/forward.py, another LINE tool's webhook). No proxy is taken from the environment."""

from __future__ import annotations

import aiohttp


class LazySession:
    def __init__(self, *, connect: float, sock_read: float) -> None:
        self.timeout = aiohttp.ClientTimeout(connect=connect, sock_read=sock_read)
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
