"""One lease setting (CRMBOT_OUTBOX_LEASE) used everywhere a job is committed or claimed: the web tier's
outbox, the Slack listeners' posts, the worker's claims, and the reminder pass's result posts."""

from __future__ import annotations

from bot.app import build_worker
from bot.worker import WorkerThread
from conversations import jobs
from conversations.keys import TeamRef
from tests.bot.reminders.conftest import World
from tests.bot.reminders.test_owners_reminders import DAY, KICKOFF, alice_reports, owned_team, run_at

LEASE = 77


def test_crmbot_outbox_lease_reaches_every_tier(world: World) -> None:
    svc, _ = world.another_clock(outbox_lease=LEASE)
    assert svc.outbox.lease == LEASE
    assert svc.slack.deps.kpi.lease == LEASE and svc.kpi is svc.slack.deps.kpi  # the Slack listeners' posts
    thread = WorkerThread(lambda: build_worker(world.config(outbox_lease=LEASE), svc.script, clock=world.clock))
    try:
        assert thread.worker.lease == LEASE
    finally:
        thread.close()


def test_the_last_nudge_s_result_post_waits_the_configured_lease(world: World) -> None:
    ref = owned_team(world)
    run_at(world, KICKOFF)
    alice_reports(world, ref, KICKOFF + DAY)
    run_at(world, KICKOFF + 7 * DAY)
    _, clock = world.another_clock(outbox_lease=LEASE)
    world.clock.t = KICKOFF + 14 * DAY
    summary = clock.inner.run(world.clock.t)  # queued, not delivered yet
    assert summary.queued == ["slack T1/C1 nudge14 for 2026-Q1 (result, 2 area(s) missing)"]
    tag = TeamRef("T1", "C1").tag[1:-1]
    [post] = world.r.hkeys(jobs.mailbox(tag))  # the result post, committed with the quarter's close
    assert world.r.zscore(jobs.due(jobs.shard_of(tag)), jobs.ref(tag, post.decode())) == world.clock.t + LEASE
