"""Users written the way the product writes them: the state machine's own records, committed by
``RedisStore.update`` (the product's Lua commit, its keys, its TTLs, the reminder index).

A finished user follows, starts, answers ten questions and says yes to the quarterly reminder; a
user in progress has followed, started and answered some questions. The records come from running
``conversations.machine`` over those inputs (once per answer pattern, then each user's own times), and
each user is committed in one ``update`` as the bot's last step would (fresh users, so the snapshot
is the empty one). The dedupe marks the commits leave are what the dedupe window later expires.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import replace

import redis

from conversations import inputs, keys
from conversations.inputs import Input
from conversations.keys import Subject
from conversations.machine import Conv, Settings, build
from conversations.store import OK, RedisStore, Snapshot

ANSWERS = ("AAAAAAAAAA", "AAAAAAAABC", "AAAAAAABCD", "ABCDABCDAB", "DDDDDDDDDD", "BBBBBBBBBB", "AAAAAAAAAB")
DAY = 86400
CONVERSATION_TTL = 7 * DAY  # Config.conversation_ttl's default; the bot keeps an unfinished record a day longer


def line_user(prefix: str, n: int) -> str:
    return "U" + hashlib.md5(f"{prefix}-{n}".encode()).hexdigest()


def _walk(inputs: list[Input], start: float) -> Conv:
    machine = build(Settings())
    conv, t = Conv(), start
    for inp in inputs:
        step = machine.step(conv, inp, t)
        if step.changed and step.conv is not None:
            conv = step.conv
        t += 3.0
    return conv


def finished_template(answers: str, at: float) -> Conv:
    steps = [Input(inputs.FOLLOW), Input(inputs.START)]
    steps += [Input(inputs.ANSWER, choice=a, q=q, sid=1) for q, a in enumerate(answers)]
    return _walk([*steps, Input(inputs.OPT_IN)], at)


def in_progress_template(answered: int, at: float) -> Conv:
    steps = [Input(inputs.FOLLOW), Input(inputs.START)]
    steps += [Input(inputs.ANSWER, choice="B", q=q, sid=1) for q in range(answered)]
    return _walk(steps, at)


def seed(client: redis.Redis, prefix: str, count: int, *, finished: bool, at: float, threads: int = 4) -> None:
    """Commit ``count`` users (finished and opted in, or in progress) through RedisStore.update."""
    store = RedisStore(client)
    if finished:
        templates = [finished_template(a, at) for a in ANSWERS]
    else:
        templates = [in_progress_template(k, at) for k in range(10)]
    errors: list[str] = []

    def work(part: int) -> None:
        for n in range(part, count, threads):
            conv = templates[n % len(templates)]
            t = at + (n % 86400) * 0.001
            conv = replace(conv, updated=t, finished=t if conv.last else 0.0)
            subject = Subject("line", line_user(prefix, n))
            ttl = CONVERSATION_TTL + DAY if conv.in_progress and not conv.last else 0
            snap = Snapshot(subject, "", Conv(), False)
            result = store.update(snap, conv, f"seed-{n}", ttl=ttl, remind_index=conv.remind)
            if result != OK:
                errors.append(f"{subject.user_id}: {result}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise RuntimeError(f"seeding failed for {len(errors)} users, e.g. {errors[0]}")


def expire_dedupe_marks(client: redis.Redis) -> int:
    """What the dedupe window does when it runs out: every mark goes."""
    gone = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{keys.PREFIX}:*:seen:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            gone += client.delete(*batch)
            batch = []
    if batch:
        gone += client.delete(*batch)
    return gone
