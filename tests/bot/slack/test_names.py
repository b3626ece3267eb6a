"""The console's Slack names: the console only reads Redis and asks for a missing name; the worker looks
it up through the (fake) Slack Web API, users.info for a person and conversations.info for a channel,
keeps it with a TTL, and puts back what it could not look up now."""

from __future__ import annotations

import time

from conversations.keys import SLACK_NAMES_WANTED, slack_name
from conversations.slack_names import MISS_TTL, NAME_TTL, SlackNames
from tests.bot.slack.conftest import SlackEnv
from tests.fakes.slack_api import CHANNEL_NAME, TEAM_ID

PERSON, CHANNEL, GONE = "U0ALICE", "C0CRM1", "U0GONE"


def fetch(env: SlackEnv) -> int:
    assert env.worker is not None
    worker = env.worker.worker
    [chore] = worker.chores
    return int(env.worker.call(chore(worker.r)))


def test_the_worker_fetches_the_names_the_console_asked_for(slack_env: SlackEnv) -> None:
    env = slack_env
    names = SlackNames(env.r)
    assert names.get([(TEAM_ID, PERSON), (TEAM_ID, CHANNEL)]) == {}  # not known yet: asked for
    assert env.fake.calls("users.info") == [] and env.fake.calls("conversations.info") == []  # the web tier never asks
    assert fetch(env) == 2
    assert names.get([(TEAM_ID, PERSON), (TEAM_ID, CHANNEL)]) == {(TEAM_ID, PERSON): f"User {PERSON}",
                                                                  (TEAM_ID, CHANNEL): CHANNEL_NAME}
    assert [c.args.get("user") for c in env.fake.calls("users.info")] == [PERSON]
    assert [c.args.get("channel") for c in env.fake.calls("conversations.info")] == [CHANNEL]
    assert 0 < env.r.ttl(slack_name(TEAM_ID, PERSON)) <= NAME_TTL
    assert env.r.scard(SLACK_NAMES_WANTED) == 0 and fetch(env) == 0  # nothing more to look up


def test_a_refused_lookup_is_remembered_briefly_and_a_rate_limit_is_tried_later(slack_env: SlackEnv) -> None:
    env = slack_env
    names = SlackNames(env.r)
    names.get([(TEAM_ID, GONE)])
    env.fake.fail("users.info", "user_not_found")
    assert fetch(env) == 1
    assert names.get([(TEAM_ID, GONE)]) == {} and env.r.scard(SLACK_NAMES_WANTED) == 0  # not asked again at once
    assert 0 < env.r.ttl(slack_name(TEAM_ID, GONE)) <= MISS_TTL
    names.get([(TEAM_ID, PERSON)])
    env.fake.fail("users.info", status=429)
    assert fetch(env) == 0
    assert env.r.smembers(SLACK_NAMES_WANTED) == {f"{TEAM_ID}:{PERSON}".encode()}  # still wanted
    assert fetch(env) == 1 and names.get([(TEAM_ID, PERSON)]) == {(TEAM_ID, PERSON): f"User {PERSON}"}


def test_the_running_worker_fetches_them_on_its_own(slack_env: SlackEnv) -> None:
    env = slack_env
    assert env.worker is not None
    SlackNames(env.r).get([(TEAM_ID, CHANNEL)])
    env.worker.start()
    deadline = time.monotonic() + 30
    while not SlackNames(env.r).get([(TEAM_ID, CHANNEL)]):
        assert time.monotonic() < deadline, "the worker never fetched the channel's name"
        time.sleep(0.05)  # polling the running worker, bounded by the deadline
