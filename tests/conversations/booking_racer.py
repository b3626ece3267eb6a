"""One racer of tests/conversations/test_booking_race.py, run as its own OS process:

    python -m tests.conversations.booking_racer REDIS_URL RACER NOW

Once connected it says so (``race:ready``), then waits on its own go list (``race:go:<racer>``, BLPOP)
for an order, ``{"round", "lead", "start", "rid"}``, books it with the product's
:class:`~conversations.booking.Bookings` (time fixed at NOW, epoch seconds) and pushes what came of it
to ``race:out:<round>``; ``"stop"`` ends it. The test pushes every racer's order of a round in one
MULTI, so all of them wake at once and race for the slot.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import redis

from conversations.booking import Booked, Bookings, Full
from conversations.keys import lead_subject

WAIT = 60  # seconds without an order before the racer gives up (the test died)


def main(url: str, racer: str, now: float) -> int:
    client = redis.Redis.from_url(url, socket_timeout=WAIT + 30)  # BLPOP waits WAIT seconds on the server
    store = Bookings(client, clock=lambda: now)
    client.rpush("race:ready", racer)
    while True:
        got = client.blpop([f"race:go:{racer}"], timeout=WAIT)
        if got is None:
            return 3
        order = got[1].decode()
        if order == "stop":
            return 0
        o = json.loads(order)
        result = store.book(lead_subject(o["lead"]), datetime.fromisoformat(o["start"]), o["rid"])
        if isinstance(result, Booked):
            out = {"racer": racer, "kind": "booked", "id": result.booking.id, "repeated": result.repeated,
                   "moved": result.moved_from is not None}
        else:
            out = {"racer": racer, "kind": "full" if isinstance(result, Full) else type(result).__name__}
        client.rpush(f"race:out:{o['round']}", json.dumps(out))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], float(sys.argv[3])))
