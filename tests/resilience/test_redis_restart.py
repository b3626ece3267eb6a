"""Redis restarted in the middle of diagnoses (persistence on): the request in flight gets 503,
LINE's redelivery then completes it; nothing lost, nothing doubled."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

from bot.app import build_services, create_app
from conversations import keys
from conversations.keys import Subject
from tests.bot.line.conftest import line_config, start_worker
from tests.bot.line.helpers import TOKEN, LineUser, last_quick_reply_data
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.redis_server import RedisServer

USERS = 6


@pytest.fixture
def fake_line() -> Iterator[FakeLineApi]:
    with FakeLineApi(access_token=TOKEN) as fake:
        yield fake
        fake.assert_contract_ok()


@pytest.mark.parametrize("how", ["stop", "kill"])  # SIGTERM, then SIGKILL
def test_restart_mid_diagnoses_loses_and_doubles_nothing(
    persistent_redis: RedisServer, fake_line: FakeLineApi, how: str
) -> None:
    clock = FakeClock()
    config = line_config(persistent_redis.url, fake_line)
    svc = build_services(config, clock=clock)
    http = create_app(services=svc).test_client()
    worker = start_worker(config, svc, clock)
    users = [LineUser(http, fake_line, clock, f"U{i:032d}") for i in range(USERS)]

    def answer(user: LineUser, letter: str, *, redelivery: bool = False, event: dict | None = None):
        data = next(d for d in last_quick_reply_data(fake_line.delivered(user.user_id)) if d.endswith(":" + letter))
        ev = event or user.postback_event(data)
        if redelivery:
            ev = dict(ev, deliveryContext={"isRedelivery": True})
        return ev, user.post(ev)

    for u in users:  # everyone is three answers in
        u.say("診断")
        worker.drain()
        for letter in "ABC":
            answer(u, letter)
            worker.drain()

    in_flight = []
    getattr(persistent_redis, how)()  # Redis goes away mid-diagnosis
    for u in users:
        ev, res = answer(u, "D")
        assert res.status_code == 503
        in_flight.append(ev)
    persistent_redis.start()
    for u, ev in zip(users, in_flight, strict=True):
        assert u.post(dict(ev, deliveryContext={"isRedelivery": True})).status_code == 200
        assert u.post(dict(ev, deliveryContext={"isRedelivery": True})).status_code == 200  # twice: applied once
    worker.drain()
    for u in users:
        for letter in "ABCDAB":
            answer(u, letter)
            worker.drain()

    client = redis.Redis.from_url(persistent_redis.url)
    for u in users:
        conv = json.loads(client.get(keys.conv(Subject("line", u.user_id))))
        assert conv["s"] == "done" and conv["last"] == "ABCDABCDAB"
        got = [m.get("text", m.get("altText", ""))[:5] for m in fake_line.delivered(u.user_id)]
        assert got == ["Q1/10", "Q2/10", "Q3/10", "Q4/10", "Q5/10", "Q6/10", "Q7/10", "Q8/10", "Q9/10", "Q10/1",
                       "CRM診断", got[-1]]  # ... the result card, then the first optional question
        assert got[-1] == svc.script.qualify.questions[0].text[:5]
    assert [k for k in client.scan_iter(match="crmbot:{*}:out")] == []  # every job delivered
    client.close()
    worker.close()
