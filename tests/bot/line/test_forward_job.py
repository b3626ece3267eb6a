"""A LINE webhook's forward as a job (bot/line/forward.py): named after its events, carrying the exact
bytes and signature, spread over hash slots and shards; and the origin the parser gives each event."""

from __future__ import annotations

import base64
import json

import pytest
from redis.crc import key_slot

from bot.line import events, forward
from conversations import jobs
from conversations.content import load_script
from conversations.jobs import Job
from conversations.ownership import Origin
from conversations.transports import ForwardState, Transport
from tests.bot.line.helpers import DESTINATION

pytestmark = pytest.mark.fast


def event(event_id: str, kind: str = "message", redelivery: bool = False, **extra: object) -> dict[str, object]:
    ev = {"type": kind, "mode": "active", "timestamp": 1_767_225_600_000, "webhookEventId": event_id,
          "source": {"type": "user", "userId": "U" + "1" * 32}, "deliveryContext": {"isRedelivery": redelivery},
          "replyToken": "t" + event_id}
    ev.update(extra)
    return ev


def body_of(*evs: dict[str, object]) -> tuple[bytes, dict[str, object]]:
    payload = {"destination": DESTINATION, "events": list(evs)}
    return json.dumps(payload, ensure_ascii=False).encode(), payload


def test_a_redelivery_of_the_same_events_has_the_same_name() -> None:
    body, payload = body_of(event("01A"), event("01B"))
    again, again_payload = body_of(event("01B", redelivery=True), event("01A", redelivery=True))
    assert body != again
    assert forward.digest_of(body, payload) == forward.digest_of(again, again_payload)
    other, other_payload = body_of(event("01A"))
    assert forward.digest_of(other, other_payload) != forward.digest_of(body, payload)


def test_a_body_without_event_ids_is_named_by_its_bytes() -> None:
    empty, empty_payload = body_of()
    assert forward.digest_of(empty, empty_payload) == forward.digest_of(empty, empty_payload)
    spaced = empty.replace(b",", b", ")
    assert forward.digest_of(spaced, json.loads(spaced)) != forward.digest_of(empty, empty_payload)
    no_id, no_id_payload = body_of(event("01A"), {"type": "join", "source": {"type": "group", "groupId": "C1"}})
    assert forward.digest_of(no_id, no_id_payload) != forward.digest_of(*body_of(event("01A")))


def test_the_job_carries_the_exact_bytes_and_signature_through_its_json() -> None:
    body = '{"destination":"U1","events":[{"text":"\\ud83d\\ude00 ＡＢ\\r\\n"}]}  \n'.encode()
    once = forward.once_for(body, "c2lnbmF0dXJl", json.loads(body), 100.0, ttl=3600)
    stored = Job.from_json(once.job.to_json())
    assert stored.transport is Transport.LINEFORWARD and stored.says_something and stored.outputs == []
    assert isinstance(stored.state, ForwardState)
    assert base64.b64decode(stored.forward.body) == body and stored.forward.signature == "c2lnbmF0dXJl"
    assert once.ttl == 3600 and once.job.id.startswith("fwd-") and not jobs.is_figures(once.job.id)
    assert key_slot(once.mark.encode()) == key_slot(jobs.mailbox(once.job.tag).encode())  # one script's keys


def test_forwards_spread_over_hash_slots_and_queue_shards() -> None:
    bodies = [body_of(event(f"01E{i:04d}")) for i in range(64)]
    onces = [forward.once_for(body, "s", payload, 0.0, 60) for body, payload in bodies]
    slots = {key_slot(jobs.mailbox(o.job.tag).encode()) for o in onces}
    shards = {jobs.shard_of(o.job.tag) for o in onces}
    assert len(slots) == 64 and shards == set(range(jobs.QUEUE_SHARDS))


def test_the_parser_tells_each_event_its_origin() -> None:
    keywords = load_script("ja").keywords
    _, payload = body_of(
        event("01F", "follow", follow={"isUnblocked": False}),
        event("01U", "unfollow"),
        event("01P", "postback", postback={"data": "action=buy"}),
        event("01T", message={"type": "text", "id": "1", "quoteToken": "q", "text": "診断"}),
        event("01S", message={"type": "sticker", "id": "2", "quoteToken": "q", "packageId": "1", "stickerId": "2",
                              "stickerResourceType": "STATIC"}),
    )
    assert [ev.origin for ev in events.parse(payload, keywords)] == [
        Origin.EVENT, Origin.EVENT, Origin.POSTBACK, Origin.TEXT, Origin.MESSAGE]
