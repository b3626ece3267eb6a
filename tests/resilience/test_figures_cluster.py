"""The figures exact on one server and on the Redis Cluster the suite starts: scripted LINE users through
signed webhooks, the core and the worker (which applies the figures records in each person's figures shard),
with a redelivered answer, a double tap, going back to change an answer, a restart and a source link."""

from __future__ import annotations

from typing import Any

from bot.app import build_services, create_app
from conversations.analytics import SHARDS, Analytics, base
from tests.bot.line.conftest import LineEnv, start_worker
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.resilience.test_cluster import (  # noqa: F401 (fixtures)
    Backend,
    SlotErrors,
    apis,
    cluster,
    node_of,
    on_cluster,
    single,
    slot_errors,
)


def flow(backend: Backend, fake: FakeLineApi) -> dict[str, Any]:
    fake.reset()
    clock = FakeClock()
    config = backend.config(line=fake)
    svc = build_services(config, clock=clock)
    worker = start_worker(config, svc, clock)
    env = LineEnv(svc, create_app(services=svc).test_client(), fake, clock, backend.client, worker)
    try:
        people = [env.user(f"U{i:032x}") for i in range(6)]
        for i, user in enumerate(people):
            user.follow()
            env.settle()
            user.say("診断 ads" if i % 2 == 0 else "診断")
            env.settle()
            for q, letter in enumerate("ABCAD"):
                ev = user.postback_event(f"a:1:{q}:{letter}")
                user.send(ev)
                if q == 2:  # LINE redelivers it, and a double tap sends it again
                    user.send(dict(ev, deliveryContext={"isRedelivery": True}))
                    user.send(ev)
                env.settle()
            user.tap("b:1:5")  # back to Q5, answered again
            env.settle()
            user.tap("a:1:4:A")
            env.settle()
            if i == 5:  # left at Q6
                continue
            if i == 4:  # starts over at Q6 (asked to confirm; confirmed twice: a double tap)
                user.say("診断")
                env.settle()
                user.tap("r:1")
                user.tap("r:1")
                env.settle()
                continue
            for q, letter in enumerate("BBBBB", start=5):
                user.tap(f"a:1:{q}:{letter}")
                env.settle()
        stats = Analytics(backend.client, clock=clock)
        return {"all": stats.funnel(), "ads": stats.funnel(source="ads"), "followers": stats.followers(),
                "leads": sorted((x.id, x.answers, x.reached, x.source) for x in stats.leads())}
    finally:
        worker.close()


def test_the_figures_are_exact_and_the_same_on_one_server_and_on_the_cluster(
    single: Backend, on_cluster: Backend, apis: tuple[FakeLineApi, Any], slot_errors: SlotErrors,  # noqa: F811
    cluster: Any,  # noqa: F811
) -> None:
    line, _ = apis
    expected = flow(single, line)
    got = flow(on_cluster, line)
    assert got == expected
    f = got["all"]
    assert (f["started"], f["finished"], got["followers"]) == (7, 4, 6)
    assert [q["shown"] for q in f["questions"]] == [7, 6, 6, 6, 6, 6, 4, 4, 4, 4]
    assert f["questions"][4]["answers"] == {"A": 4, "B": 0, "C": 0, "D": 0}  # Q5 changed from D to A
    assert (f["in_progress"], f["questions"][5]["in_progress"], f["questions"][0]["in_progress"]) == (2, 1, 1)
    assert f["stopped"] == 1 and f["questions"][5]["stopped"] == 1  # the restarted one, at Q6
    assert got["ads"]["started"] == 4 and got["ads"]["finished"] == 2  # users 0, 2, 4 (and 4's restart)
    assert len({node_of(on_cluster.client, base(k)) for k in range(SHARDS)}) == 3
    assert slot_errors.raised == []
