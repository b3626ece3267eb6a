"""「データを削除」 end to end: signed webhooks, the real core on the suite's Redis, the worker applying figures,
the fake LINE API. After the owner confirms, no key of theirs is left (listed by SCAN MATCH over the whole
keyspace, {stats} included) and no member of a shared set names them; everyone's totals are unchanged."""

from __future__ import annotations

import json

import redis

from bot.privacy import AUDIT, person_hash
from conversations import analytics, jobs, keys
from conversations.analytics import Analytics
from conversations.booking import Booked, Bookings
from conversations.keys import Subject
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import last_quick_reply_data, texts
from tests.bot.line.test_webhook import take
from tests.conversations.test_booking_store import booking_store_naming

AVAILABILITY = {
    "timezone": "Asia/Tokyo", "slot_minutes": 30, "capacity": 1, "min_notice_hours": 12, "horizon_days": 14,
    "weekly": {d: [["10:00", "12:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    "closed_dates": [], "reminder_hour": 18, "reminder_hours_before": 3, "format": "オンライン",
}


def keys_of(r: redis.Redis, user_id: str) -> list[str]:
    """Every key whose name holds the user's ID (the user's slot and any global family)."""
    return sorted(k.decode() for k in r.scan_iter(match=f"*{user_id}*", count=1000))


def members_naming(r: redis.Redis, user_id: str) -> list[str]:
    """Members of the shared sets and hash fields that name the user (leads, refs, indexes)."""
    found = []
    for raw in r.scan_iter(match="crmbot:*", count=1000):
        key = raw.decode()
        kind = r.type(key).decode()
        if kind == "zset":
            items = [m.decode() for m in r.zrange(key, 0, -1)]
        elif kind == "set":
            items = [m.decode() for m in r.smembers(key)]
        elif kind == "hash":
            items = [f.decode() for f in r.hkeys(key)]
        else:
            continue
        found += [f"{key} {m}" for m in items if user_id in m]
    return found


def test_delete_my_data_removes_every_key_and_keeps_only_anonymous_counts(line_env: LineEnv) -> None:
    env, r = line_env, line_env.r
    other = env.user()
    take(env, other, "ABCDABCDAB")
    owner = env.user()
    take(env, owner, "AABBCCDDAA")
    owner.tap("o:1")  # the quarterly reminder
    env.settle()
    owner.tap(last_quick_reply_data(env.fake.delivered(owner.user_id))[0])  # ignored or not, any button
    owner.say("相談する")  # a consultation request: an open lead for the operator
    env.settle()
    bookings = Bookings(r, clock=env.clock)  # and a consultation booked: a place held, a reminder scheduled
    bookings.set_availability(AVAILABILITY)
    slot = bookings.next_free(1)[0].start
    booked = bookings.book(Subject("line", owner.user_id), slot, "ev-book-1")
    assert isinstance(booked, Booked) and bookings.next_free(1)[0].start != slot
    bookings.request_consultation(Subject("line", other.user_id))
    figures = Analytics(r, clock=env.clock)
    before = figures.funnel()
    assert keys_of(r, owner.user_id), "the owner has keys before"
    assert members_naming(r, owner.user_id)
    assert figures.person("line", owner.user_id)

    owner.say("データを削除")
    env.settle()
    asked = env.fake.delivered(owner.user_id)[-1]
    assert asked["text"] == env.svc.script.privacy.erase_confirm
    assert last_quick_reply_data([asked]) == ["e:1", "e:0"]
    assert keys_of(r, owner.user_id), "nothing is removed before the owner says yes"
    yes = owner.postback_event("e:1")
    owner.send(yes)
    env.settle()
    assert texts(env.fake.delivered(owner.user_id))[-1] == env.svc.script.privacy.erased
    env.settle()
    said = len(env.fake.delivered(owner.user_id))
    owner.send({**yes, "deliveryContext": {"isRedelivery": True}})  # LINE redelivers the confirmation
    env.settle()
    assert len(env.fake.delivered(owner.user_id)) == said  # "deleted" is not said twice

    assert keys_of(r, owner.user_id) == []
    assert members_naming(r, owner.user_id) == []
    assert booking_store_naming(r, owner.user_id) == []  # bookings, consultation record, indexes, outcomes
    assert bookings.next_free(1)[0].start == slot  # the place is free again
    assert booking_store_naming(r, other.user_id)  # the other shop's consultation record is kept
    assert figures.person("line", owner.user_id) == []
    assert figures.funnel() == before  # every total, the owner's diagnosis now an anonymous count
    assert keys_of(r, other.user_id) and figures.person("line", other.user_id)  # the other shop untouched
    [entry] = r.xrange(AUDIT)
    fields = {k.decode(): v.decode() for k, v in entry[1].items()}
    assert fields["by"] == "owner" and fields["who"] == person_hash(Subject("line", owner.user_id))
    assert owner.user_id not in json.dumps(fields)
    removed = json.loads(fields["removed"])
    assert removed["leads"] == 1 and removed["conv"] == 1 and removed["reminder_index"] == 1
    assert removed["bookings"] == 1 and removed["bookings_cancelled"] == 1 and removed["consultation"] == 1


def test_no_keeps_everything_and_shows_the_open_question_again(line_env: LineEnv) -> None:
    env, r = line_env, line_env.r
    owner = env.user()
    owner.follow()
    env.settle()
    owner.tap("s")
    env.settle()
    had = keys_of(r, owner.user_id)
    owner.say("データを削除")
    env.settle()
    owner.tap("e:0")
    env.settle()
    kept, question = env.fake.delivered(owner.user_id)[-2:]
    assert kept["text"] == env.svc.script.privacy.erase_kept
    assert question["text"].startswith("Q1/10")
    assert set(had) <= set(keys_of(r, owner.user_id))


def test_pending_jobs_are_discarded_through_the_outbox(line_env: LineEnv) -> None:
    """A message queued but not yet sent (a job in the mailbox, due) is never sent after the erasure."""
    env, r = line_env, line_env.r
    owner = env.user()
    owner.follow()
    env.settle()
    subject = Subject("line", owner.user_id)
    pending = env.svc.outbox.enqueue(subject, [])  # queued, not delivered (no settle)
    assert r.hexists(jobs.mailbox(subject.tag_name), pending.id)
    removed = env.svc.bot.eraser.erase(subject, by="operator:test") if env.svc.bot.eraser else {}
    assert removed["jobs"] >= 1
    assert not r.exists(jobs.mailbox(subject.tag_name), jobs.leases(subject.tag_name), keys.conv(subject))
    env.settle()  # the worker finds the job gone: a tombstone, then after a lease the mark goes with it
    env.clock.advance(jobs.LEASE + 1)
    env.settle()
    assert keys_of(r, owner.user_id) == []
    assert not any(owner.user_id in m.decode() for m in r.zrange(jobs.due(jobs.shard_of(subject.tag_name)), 0, -1))
    people = analytics.people_key(analytics.shard_of("line", owner.user_id))
    assert not r.hexists(people, f"line:{owner.user_id}")  # the person's field: leads, follow mark, name


def test_a_person_from_a_source_leaves_no_trace_in_its_figures(line_env: LineEnv) -> None:
    env, r = line_env, line_env.r
    owner = env.user()
    owner.say("診断 ads")  # a source link's text: the diagnosis starts, counted under "ads"
    env.settle()
    for letter in "AABBCCDDAA":
        owner.say(letter)
        env.settle()
    owner.say("診断")  # a retake, left at Q1: a second lead under "ads"
    env.settle()
    figures = Analytics(r, clock=env.clock)
    before = figures.funnel(source="ads")
    assert (before["started"], before["finished"]) == (2, 1)
    assert any("~s=ads" in m for m in members_naming(r, owner.user_id))
    owner.say("データを削除")
    env.settle()
    owner.tap("e:1")
    env.settle()
    assert members_naming(r, owner.user_id) == [] and keys_of(r, owner.user_id) == []
    after = figures.funnel(source="ads")  # counted still, anonymously (the retake under way no longer is)
    assert after["in_progress"] == before["in_progress"] - 1 == 0

    def counts(f: dict) -> tuple:
        return (f["started"], f["finished"], f["tiers"],
                [(q["shown"], q["answered"], q["answers"]) for q in f["questions"]])

    assert counts(after) == counts(before)
