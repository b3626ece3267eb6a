"""Jobs as the worker reads them, end to end (signed webhooks, real Redis, the fake LINE API, the worker as
`crmbot worker` builds it):

- a reply keeps the wording of the script it was committed with: the content file edited and the worker
  restarted with it, a reply already committed still says the old text (only what is committed after
  speaks the new one);
- a job committed in the first shape (dict outputs, free state and meta, its step's figures in
  ``meta["stats"]``; a figures-only job of channel "stats") still delivers, and its figures count once;
- a step's figures are a record of their own, never a message: an unfollow commits no job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import redis

from bot import views
from bot.app import build_services, build_worker, create_app
from bot.worker import WorkerThread
from conversations import inputs, jobs, keys
from conversations.analytics import Analytics, delta_of
from conversations.content import SCRIPTS_DIR, load_script
from conversations.keys import Subject
from conversations.machine import ASKING, DONE, Conv
from conversations.outputs import Question, Result
from conversations.transports import Transport
from tests.bot.line.conftest import LineEnv, line_config
from tests.bot.line.helpers import LineUser
from tests.conftest import FakeClock
from tests.fakes.line_api import REPLY, FakeLineApi

OLD_Q1 = "売上の合計ではなく、"
NEW_Q1 = "（改訂）売上の合計ではなく、"


def content_dir(tmp_path: Path, name: str, *, edit: bool = False) -> str:
    """A copy of the Japanese script in its own folder (CRMBOT_CONTENT_DIR), question 1 edited or not."""
    folder = tmp_path / name
    folder.mkdir()
    text = (SCRIPTS_DIR / "diagnosis.ja.toml").read_text(encoding="utf-8")
    assert text.count(OLD_Q1) == 1
    (folder / "diagnosis.ja.toml").write_text(text.replace(OLD_Q1, NEW_Q1) if edit else text, encoding="utf-8")
    return str(folder)


def test_a_reply_keeps_the_wording_it_was_committed_with(r: redis.Redis, redis_url: str, fake_line: FakeLineApi,
                                                         clock: FakeClock, tmp_path: Path) -> None:
    old_config = line_config(redis_url, fake_line, content_dir=content_dir(tmp_path, "old"))
    new_config = line_config(redis_url, fake_line, content_dir=content_dir(tmp_path, "new", edit=True))
    old = build_services(old_config, clock=clock)
    user = LineUser(create_app(services=old).test_client(), fake_line, clock)
    user.tap("s")  # committed with the old script; no worker runs yet
    assert fake_line.delivered(user.user_id) == []
    assert r.exists(keys.content(old.script.version))  # stored with the process's first job

    new_script = load_script("ja", new_config.content_dir)
    assert new_script.version != old.script.version and NEW_Q1 in views.question_text(new_script, 0)
    worker = WorkerThread(lambda: build_worker(new_config, new_script, clock=clock))  # restarted, file edited
    try:
        worker.drain()
        [q1] = fake_line.delivered(user.user_id)
        assert q1["text"] == views.question_text(old.script, 0) and NEW_Q1 not in q1["text"]
        # The web tier restarted with the edited file: what it commits now speaks the new text.
        new = build_services(new_config, clock=clock)
        later = LineUser(create_app(services=new).test_client(), fake_line, clock)
        later.tap("s")
        worker.drain()
        [q1] = fake_line.delivered(later.user_id)
        assert q1["text"] == views.question_text(new_script, 0)
    finally:
        worker.close()
    # A version Redis no longer has (a Redis that lost its data): a worker renders with its own script.
    r.delete(keys.content(old.script.version))
    fresh = WorkerThread(lambda: build_worker(new_config, new_script, clock=clock))
    try:
        user.tap("a:1:0:A")
        fresh.drain()
        user.tap("b:1:1")  # back to question 1, committed by the old web tier
        fresh.drain()
        assert fake_line.delivered(user.user_id)[-1]["text"] == views.question_text(new_script, 0)
    finally:
        fresh.close()


def put_first_shape(env: LineEnv, user: LineUser, job_id: str, **fields: Any) -> str:
    """A job as the first shape stored it, committed as a commit does (mark, job, hint)."""
    subject = Subject(Transport.LINE, user.user_id)
    job = {"id": job_id, "channel": "line", "to": user.user_id, "tag": subject.tag_name, "outputs": [],
           "received": env.clock(), "attempts": 0, "state": {}, "meta": {}, "error": "", "parked": ""} | fields
    ref = jobs.ref(subject.tag_name, job_id)
    shard = jobs.shard_of(subject.tag_name)
    env.r.zadd(jobs.due(shard), {ref: env.clock() + 30})
    env.r.hset(jobs.mailbox(subject.tag_name), job_id, json.dumps(job))
    env.r.lpush(jobs.ready(shard), ref)
    return ref


def started(env: LineEnv, subject: Subject) -> tuple[Conv, dict[str, Any]]:
    """The record and the figures of diagnosis 1 started now."""
    now = env.clock()
    conv = Conv(state=ASKING, sid=1, q=0, updated=now, n=1, begun=round(now, 3))
    delta = delta_of(Conv(), conv, (Question(1, 0),), subject, now, event=inputs.START)
    assert delta is not None
    return conv, delta


def test_a_reply_committed_in_the_first_shape_still_delivers_and_counts_once(line_env: LineEnv) -> None:
    env = line_env
    user = env.user()
    subject = Subject(Transport.LINE, user.user_id)
    conv, delta = started(env, subject)
    env.r.set(keys.conv(subject), conv.to_json())
    token = env.fake.issue_reply_token(user.user_id)
    ref = put_first_shape(env, user, "old-1", outputs=[{"type": "question", "sid": 1, "q": 0}],
                          state={"reply_token": token}, meta={"stats": delta})
    assert env.settle() == 1
    [q1] = env.fake.delivered(user.user_id)
    assert q1["text"] == views.question_text(env.svc.script, 0)
    assert [x.path for x in env.fake.recorded() if x.method == "POST"] == [REPLY]  # by its reply token
    stats = Analytics(env.r, clock=env.clock)
    assert stats.funnel()["started"] == 1 and stats.funnel()["questions"][0]["shown"] == 1
    assert not env.r.exists(jobs.mailbox(subject.tag_name))
    assert env.r.zscore(jobs.due(jobs.shard_of(subject.tag_name)), ref) is None
    # the user goes on: the figures of the new shape count on top, nothing twice
    user.tap("a:1:0:B")
    env.settle()
    assert stats.funnel()["started"] == 1 and [q["answered"] for q in stats.funnel()["questions"][:2]] == [1, 0]


def test_a_figures_only_job_of_the_first_shape_counts_and_sends_nothing(line_env: LineEnv) -> None:
    env = line_env
    user = env.user()
    subject = Subject(Transport.LINE, user.user_id)
    follow = delta_of(Conv(), Conv(), (), subject, env.clock(), event=inputs.FOLLOW)
    put_first_shape(env, user, "old-2", channel="stats", meta={"stats": follow})
    assert env.settle() == 1  # a job: "nothing to send"
    assert env.fake.recorded() == [] and Analytics(env.r).followers() == 1
    assert not env.r.exists(jobs.mailbox(subject.tag_name))


def test_an_unfollow_commits_figures_and_no_job_and_counts_a_first_shape_job_it_drops(line_env: LineEnv) -> None:
    """A finished diagnosis whose result (a first-shape job, its figures in it) waits when the user
    unfollows: the result is never sent, but the diagnosis counts as finished, once."""
    env = line_env
    user = env.user()
    user.follow()
    env.settle()
    subject = Subject(Transport.LINE, user.user_id)
    now = env.clock()
    asking = Conv(state=ASKING, sid=1, q=9, answers="AAAAAAAAA", updated=now - 60, n=10, begun=round(now - 300, 3))
    done = Conv(state=DONE, sid=1, last="AAAAAAAAAB", finished=now, updated=now, n=11, begun=asking.begun)
    finished = delta_of(asking, done, (Result(1, "AAAAAAAAAB"),), subject, now, event=inputs.ANSWER)
    env.r.set(keys.conv(subject), done.to_json())
    put_first_shape(env, user, "old-3", outputs=[{"type": "result", "sid": 1, "answers": "AAAAAAAAAB"}],
                    meta={"stats": finished})
    env.r.delete(jobs.ready(jobs.shard_of(subject.tag_name)))  # the worker has not looked at it yet
    calls = len(env.fake.recorded())
    user.send(user.event("unfollow", reply=False))
    box = env.r.hgetall(jobs.mailbox(subject.tag_name))
    assert list(box) == [b"x-old-3"]  # set aside (never sent) for the unfollow's figures to count
    [unfollow] = env.r.hvals(jobs.figures(subject.tag_name))
    assert json.loads(unfollow)["delta"]["follow"] == 0
    assert env.settle() == 0  # no delivery: an unfollow says nothing; its figures are applied
    assert len(env.fake.recorded()) == calls
    assert not env.r.exists(jobs.mailbox(subject.tag_name), jobs.figures(subject.tag_name))
    stats = Analytics(env.r, clock=env.clock)
    assert stats.followers() == 0 and stats.funnel()["finished"] == 1 and stats.funnel()["tiers"]["A"] == 1
    [lead] = stats.leads()
    assert (lead.tier, lead.answers) == ("A", "AAAAAAAAAB")


def test_a_step_with_nothing_to_say_commits_its_figures_alone(line_env: LineEnv) -> None:
    env = line_env
    user = env.user()
    user.follow()
    env.settle()
    subject = Subject(Transport.LINE, user.user_id)
    assert Analytics(env.r).followers() == 1
    user.send(user.event("unfollow", reply=False))
    assert not env.r.exists(jobs.mailbox(subject.tag_name))  # no message, no fake channel
    [record] = [json.loads(v) for v in env.r.hvals(jobs.figures(subject.tag_name))]
    assert record["delta"]["follow"] == 0
    assert env.r.zscore(jobs.due(jobs.shard_of(subject.tag_name)), f"{subject.tag_name}|{record['id']}")
    assert env.settle() == 0
    assert Analytics(env.r).followers() == 0 and not env.r.exists(jobs.figures(subject.tag_name))
