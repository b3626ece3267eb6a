"""Two owners racing for the last place, with real processes: two ``crmbot web`` processes (each with its
``crmbot worker``) on the suite's Redis; in each round two signed LINE webhooks, one to each process,
pick the same slot (capacity 1) at the same instant. One booking between them, every round: one owner
is told it is booked, the other that it was just taken (with the next free slots)."""

from __future__ import annotations

import http.client
import json
import threading
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

import redis

from conversations.booking import Bookings
from conversations.keys import Subject
from tests.bot.line.helpers import DESTINATION, sign
from tests.bot.test_web import crmbot_web
from tests.fakes.line_api import FakeLineApi

ROUNDS = 6
AVAILABILITY: dict[str, Any] = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 0, "horizon_days": 30,
    "weekly": {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "reminder_hour": 18, "format": "電話",
}


def pick_webhook(fake: FakeLineApi, user: str, start: int) -> tuple[bytes, dict[str, str]]:
    ev = {"type": "postback", "mode": "active", "timestamp": int(time.time() * 1000),
          "source": {"type": "user", "userId": user}, "webhookEventId": "01" + uuid.uuid4().hex[:24].upper(),
          "deliveryContext": {"isRedelivery": False}, "replyToken": fake.issue_reply_token(user),
          "postback": {"data": f"bp:{start}"}}
    body = json.dumps({"destination": DESTINATION, "events": [ev]}).encode()
    return body, {"X-Line-Signature": sign(body), "Content-Type": "application/json"}


def race(ports: list[int], requests: list[tuple[bytes, dict[str, str]]]) -> list[int]:
    """Each request to its own process, all let go at once (a barrier); their HTTP statuses."""
    barrier = threading.Barrier(len(requests))
    statuses = [0] * len(requests)

    def send(i: int) -> None:
        body, headers = requests[i]
        conn = http.client.HTTPConnection("127.0.0.1", ports[i], timeout=60)
        try:
            conn.connect()  # connected first: the race is the requests, not the handshakes
            barrier.wait(timeout=30)
            conn.request("POST", "/line/webhook", body=body, headers=headers)
            res = conn.getresponse()
            res.read()
            statuses[i] = res.status
        finally:
            conn.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    return statuses


def test_two_owners_racing_for_the_last_place_get_one_booking_between_them(
        r: redis.Redis, redis_url: str, fake_line: FakeLineApi) -> None:
    bookings = Bookings(r)
    bookings.set_availability(AVAILABILITY)
    soon = datetime.now().astimezone() + timedelta(hours=2)  # well clear of the slots passing mid-test
    slots = [int(s.start.timestamp()) for s in bookings.next_free(limit=ROUNDS, after=soon)]
    assert len(slots) == ROUNDS
    with crmbot_web(redis_url, fake_line) as one, crmbot_web(redis_url, fake_line) as two:
        rounds = []
        for start in slots:
            owners = ["U" + uuid.uuid4().hex, "U" + uuid.uuid4().hex]
            statuses = race([one.port, two.port], [pick_webhook(fake_line, u, start) for u in owners])
            assert statuses == [200, 200]
            rounds.append((start, owners))
        for start, owners in rounds:
            held = [b for b in bookings.between(datetime.fromtimestamp(start).astimezone(),
                                                datetime.fromtimestamp(start + 60).astimezone())
                    if b.status == "booked"]
            assert len(held) == 1, f"slot {start}: {len(held)} bookings"
            winners = [u for u in owners if bookings.bookings_of(Subject("line", u))]
            assert len(winners) == 1
            said = {u: fake_line.wait_delivered(u, 1, timeout=30)[0]["altText"] for u in owners}
            assert said[winners[0]].startswith("ご予約を承りました")
            [loser] = [u for u in owners if u not in winners]
            assert said[loser].startswith("申し訳ありません。その枠は、ちょうど埋まってしまいました。")
            assert f"bp:{start}\"" not in json.dumps(fake_line.delivered(loser))  # not offered the lost slot
