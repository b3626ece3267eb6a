"""The worker (bot.worker): claims, records, the running loop, and `crmbot worker` as a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.app import build_services, create_app
from conversations import jobs
from conversations.jobs import Job
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import SECRET, TOKEN, LineUser
from tests.fakes.line_api import FakeLineApi
from tests.isolation import track_process

BIN = Path(sys.executable).parent


def test_a_running_worker_picks_a_committed_reply_up_without_a_sweep(line_env: LineEnv) -> None:
    """Continuous mode: the web's wake-up hint reaches a worker blocked on the queue (BRPOP); the
    test's clock never moves, so no sweep could have found the job (its recovery mark is 30 s ahead)."""
    line_env.worker.start()
    user = line_env.user()
    user.say("診断")
    line_env.fake.wait_delivered(user.user_id, 1)
    line_env.fake.wait_for(lambda f: not list(line_env.r.scan_iter(match="crmbot:{*}:out")))
    assert [r.path for r in line_env.fake.recorded()] == ["/v2/bot/message/reply"]


def test_a_job_whose_commit_never_happened_is_dropped_after_a_lease(line_env: LineEnv) -> None:
    """A hint and a recovery mark with no job behind them (a commit that lost its compare-and-set):
    the mark stays for a lease (the commit may still land), then goes, and its tombstone with it."""
    job = Job.new("line", "U" + "9" * 32, "u:line:U" + "9" * 32, [{"type": "greeting"}], line_env.clock())
    shard = jobs.shard_of(job.tag)
    line_env.r.zadd(jobs.due(shard), {job.ref: line_env.clock()})
    line_env.r.lpush(jobs.ready(shard), job.ref)
    assert line_env.settle() == 0
    assert line_env.r.llen(jobs.ready(shard)) == 0
    assert line_env.r.zscore(jobs.due(shard), job.ref) == line_env.clock() + 30  # kept: looked at again then
    line_env.clock.advance(30)
    assert line_env.settle() == 0
    assert line_env.r.zcard(jobs.due(shard)) == 0
    assert not line_env.r.exists(jobs.leases(job.tag))  # no tombstone left behind
    assert line_env.fake.recorded() == []


def test_a_parked_job_is_not_claimed_until_requeued(line_env: LineEnv) -> None:
    line_env.fake.fail("/v2/bot/message/reply", 403)
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    [parked] = line_env.svc.outbox.parked()
    shard = jobs.shard_of(f"u:line:{user.user_id}")
    ref = jobs.ref(f"u:line:{user.user_id}", parked.id)
    line_env.r.lpush(jobs.ready(shard), ref)  # a stray hint
    line_env.r.zadd(jobs.due(shard), {ref: 0})  # and a stray mark
    assert line_env.settle() == 0
    assert len(line_env.fake.recorded()) == 1
    assert line_env.svc.outbox.requeue(parked.id)
    assert line_env.settle() == 1
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_jobs_spread_over_the_queue_shards() -> None:
    tags = {f"u:line:U{i:032x}" for i in range(200)}
    shards = [jobs.shard_of(t) for t in tags]
    assert set(shards) == set(range(jobs.QUEUE_SHARDS))
    assert max(shards.count(s) for s in set(shards)) < 2 * len(tags) / jobs.QUEUE_SHARDS


def test_crmbot_worker_delivers_and_stops_cleanly_on_sigterm(r: redis.Redis, redis_url: str,
                                                             fake_line: FakeLineApi, clock, tmp_path: Path) -> None:
    """The Procfile's worker as a real process: it delivers what the web committed, then SIGTERM
    lets it finish and exit 0."""
    config = line_config(redis_url, fake_line)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    env = os.environ | {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                        "LINE_API_HOST": fake_line.base_url}
    proc = subprocess.Popen([BIN / "crmbot", "worker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    track_process(proc, "crmbot worker", group=True)
    try:
        users = [LineUser(http, fake_line, clock) for _ in range(5)]
        for u in users:
            u.say("診断")
        for u in users:
            fake_line.wait_delivered(u.user_id, 1, timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode == 0, output
    assert "worker: stopped" in output
    assert all(len(fake_line.delivered(u.user_id)) == 1 for u in users)
    assert TOKEN not in output and not any(u.user_id in output for u in users)


@pytest.mark.parametrize("workers", [3])
def test_several_workers_share_the_work_and_send_each_reply_once(line_env: LineEnv, workers: int) -> None:
    extra = [start_worker(line_env.svc.config, line_env.svc, line_env.clock) for _ in range(workers - 1)]
    try:
        for w in [line_env.worker, *extra]:
            w.start()
        users = [line_env.user() for _ in range(30)]
        for u in users:
            u.say("診断")
        for u in users:
            line_env.fake.wait_delivered(u.user_id, 1)
        line_env.fake.wait_for(lambda f: not list(line_env.r.scan_iter(match="crmbot:{*}:out")))
        assert all(len(line_env.fake.delivered(u.user_id)) == 1 for u in users)
        assert len(line_env.fake.recorded()) == 30
    finally:
        for w in extra:
            w.close()


class _Paced:
    """A transport that is told to wait (pacing) twice, then delivers."""

    channel = "line"

    def __init__(self) -> None:
        self.calls = 0

    async def deliver(self, attempt: Any) -> Any:
        from bot.worker import DEFER, DELIVERED, Outcome

        self.calls += 1
        return Outcome(DEFER, "paced", 40.0) if self.calls <= 2 else Outcome(DELIVERED, "ok")

    async def close(self) -> None:
        return None


def test_a_deferred_send_is_not_a_failed_attempt(line_env: LineEnv) -> None:
    """Pacing defers a job to the time its limit frees up: no attempt is counted, so a long queue of
    paced posts is never parked for it."""
    from bot.redis_conn import connect_async
    from bot.worker import Worker, WorkerThread

    paced = _Paced()

    async def build() -> Worker:
        return Worker(connect_async(line_env.svc.config), {"line": paced}, clock=line_env.clock, max_attempts=1)

    worker = WorkerThread(build)
    try:
        user = line_env.user()
        user.say("診断")
        worker.drain()
        [job] = [Job.from_json(v) for k in line_env.r.scan_iter(match="crmbot:{u:line:*}:out")
                 for v in line_env.r.hvals(k)]
        assert (paced.calls, job.attempts, job.parked) == (1, 0, "")
        line_env.clock.advance(39)
        worker.drain()
        assert paced.calls == 1  # not before the time it was told
        line_env.clock.advance(2)
        worker.drain()
        line_env.clock.advance(41)
        worker.drain()
        assert paced.calls == 3
        assert not list(line_env.r.scan_iter(match="crmbot:{u:line:*}:out"))  # delivered, never parked
    finally:
        worker.close()


def test_two_crmbot_worker_processes_share_the_queue_and_deliver_each_reply_once(
        r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock, tmp_path: Path) -> None:
    """N workers scale out: two `crmbot worker` processes (the Procfile's line, run twice) on one Redis.
    Every reply is delivered, by exactly one of them (each logs, at DEBUG, the jobs it delivered: no job
    id in both logs), and LINE receives each once."""
    config = line_config(redis_url, fake_line)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    env = os.environ | {"REDIS_URL": redis_url, "LINE_CHANNEL_SECRET": SECRET, "LINE_CHANNEL_ACCESS_TOKEN": TOKEN,
                        "LINE_API_HOST": fake_line.base_url}
    procs = []
    for n in range(2):
        proc = subprocess.Popen([BIN / "crmbot", "--log-level", "DEBUG", "worker"], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        track_process(proc, f"crmbot worker {n}", group=True)
        procs.append(proc)
    outputs = []
    try:
        users = [LineUser(http, fake_line, clock) for _ in range(40)]
        for u in users:
            u.say("診断")
        for u in users:
            fake_line.wait_delivered(u.user_id, 1, timeout=60)
        fake_line.wait_for(lambda f: not list(r.scan_iter(match="crmbot:{*}:out")), timeout=60)
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        outputs = [proc.communicate(timeout=60)[0].decode() for proc in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    delivered = [{line.split("worker: delivered ")[1].split()[0] for line in out.splitlines()
                  if "worker: delivered " in line} for out in outputs]
    assert len(delivered[0]) + len(delivered[1]) == 40  # every reply job, each delivered by one process
    assert not delivered[0] & delivered[1]
    assert all(len(fake_line.delivered(u.user_id)) == 1 for u in users)
    assert len(fake_line.recorded()) == 40  # one request a reply (a push: the processes' clock is not the test's)


def test_the_worker_s_redis_client_waits_for_a_free_connection_rather_than_failing(
        redis_url: str, fake_line: FakeLineApi) -> None:
    """The fan-out's spread: 200 multicasts woken together, each an attempt with Redis calls in flight,
    found redis-py's default pool (100 connections) full and failed with MaxConnectionsError, to be
    retried seconds later. The worker's client now holds a connection per attempt in flight (and per
    queue shard's BRPOP), and a call finding every connection busy waits for one."""
    import asyncio

    from redis.asyncio import BlockingConnectionPool

    from bot.app import build_worker
    from bot.redis_conn import connect_async
    from conversations.content import load_script

    config = line_config(redis_url, fake_line)

    async def check() -> None:
        worker = await build_worker(config, load_script())
        small = connect_async(config, connections=4)
        try:
            pool = worker.r.raw.connection_pool
            assert isinstance(pool, BlockingConnectionPool)
            assert pool.max_connections >= config.worker_concurrency + jobs.QUEUE_SHARDS
            # 50 calls at once on 4 connections: each waits its turn, none fails
            assert sorted(await asyncio.gather(*(small.incr("crmbot:test:pool") for _ in range(50)))) == list(
                range(1, 51))
        finally:
            await worker.close()
            await worker.r.raw.aclose()
            await small.aclose()

    asyncio.run(check())
