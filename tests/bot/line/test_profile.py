"""The follower's LINE display name, for the operator's leads: fetched once at follow by the worker
(never by the web tier), kept while they follow, forgotten when they unfollow; CRMBOT_FETCH_PROFILE=0
keeps only the ID."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from bot import views
from bot.app import build_services, create_app
from conversations.analytics import Analytics, person_ref
from conversations.analytics import name_of as analytics_name_of
from tests.bot.line.conftest import LineEnv, line_config, start_worker
from tests.bot.line.helpers import LineUser
from tests.conftest import FakeClock
from tests.fakes.line_api import REPLY, FakeLineApi, profile_path


def profile_calls(env: LineEnv, user: LineUser) -> int:
    return len(env.fake.recorded(profile_path(user.user_id)))


def name_of(env: LineEnv, user: LineUser) -> str:
    return analytics_name_of(env.r, person_ref("line", user.user_id))


def env_with(r: redis.Redis, redis_url: str, fake: FakeLineApi, clock: FakeClock, **changes: Any) -> LineEnv:
    config = line_config(redis_url, fake, **changes)
    svc = build_services(config, clock=clock)
    return LineEnv(svc, create_app(services=svc).test_client(), fake, clock, r, start_worker(config, svc, clock))


@pytest.fixture
def no_profile_env(r: redis.Redis, redis_url: str, fake_line: FakeLineApi, clock: FakeClock) -> Iterator[LineEnv]:
    env = env_with(r, redis_url, fake_line, clock, fetch_profile=False)
    yield env
    env.worker.close()


def test_the_name_is_fetched_once_at_follow_by_the_worker(line_env: LineEnv) -> None:
    user = line_env.user()
    line_env.fake.set_profile(user.user_id, "佐藤 一郎", language="ja")
    user.follow()
    assert profile_calls(line_env, user) == 0  # the web tier never calls LINE
    line_env.settle()
    assert profile_calls(line_env, user) == 1
    assert name_of(line_env, user) == "佐藤 一郎"
    assert [m["text"] for m in line_env.fake.delivered(user.user_id)] == [views.greeting_text(line_env.svc.script)]
    for text in ("診断", "A", "B"):
        user.say(text)
        line_env.settle()
    assert profile_calls(line_env, user) == 1  # once, at follow
    [lead] = Analytics(line_env.r, clock=line_env.clock).person("line", user.user_id)
    assert lead.name == "佐藤 一郎"


def test_unfollow_forgets_the_name_and_a_new_follow_fetches_it_again(line_env: LineEnv) -> None:
    user = line_env.user()
    line_env.fake.set_profile(user.user_id, "佐藤 一郎")
    user.follow()
    line_env.settle()
    user.send(user.event("unfollow", reply=False))
    line_env.settle()
    assert name_of(line_env, user) == ""
    line_env.fake.set_profile(user.user_id, "さとう")
    user.follow()
    line_env.settle()
    assert (profile_calls(line_env, user), name_of(line_env, user)) == (2, "さとう")


def test_no_profile_is_no_name_and_no_retry(line_env: LineEnv) -> None:
    user = line_env.user()  # the fake has no profile for them: 404, as for someone no longer a friend
    user.follow()
    assert line_env.settle() == 1
    assert (profile_calls(line_env, user), name_of(line_env, user)) == (1, "")
    assert len(line_env.fake.delivered(user.user_id)) == 1


def test_a_failing_profile_call_is_retried_without_replying_twice(line_env: LineEnv) -> None:
    user = line_env.user()
    line_env.fake.set_profile(user.user_id, "佐藤 一郎")
    line_env.fake.fail(profile_path(user.user_id), 503)
    user.follow()
    line_env.settle()
    assert name_of(line_env, user) == ""
    line_env.clock.advance(2)  # the first backoff
    line_env.settle()
    assert (profile_calls(line_env, user), name_of(line_env, user)) == (2, "佐藤 一郎")
    assert len(line_env.fake.recorded(REPLY)) == 1 and len(line_env.fake.delivered(user.user_id)) == 1


def test_a_profile_that_keeps_failing_is_given_up_not_parked(line_env: LineEnv) -> None:
    user = line_env.user()
    line_env.fake.set_profile(user.user_id, "佐藤 一郎")
    line_env.fake.fail(profile_path(user.user_id), 500, times=5)
    user.follow()
    for wait in (0, 2, 4):
        line_env.clock.advance(wait)
        line_env.settle()
    assert (profile_calls(line_env, user), name_of(line_env, user)) == (3, "")
    assert line_env.svc.outbox.parked() == [] and len(line_env.fake.delivered(user.user_id)) == 1
    assert not line_env.r.hlen(f"crmbot:{{u:line:{user.user_id}}}:out")


def test_fetch_profile_off_keeps_only_the_id(no_profile_env: LineEnv) -> None:
    env = no_profile_env
    user = env.user()
    env.fake.set_profile(user.user_id, "佐藤 一郎")
    user.follow()
    env.settle()
    user.say("診断")
    env.settle()
    assert profile_calls(env, user) == 0
    [lead] = Analytics(env.r, clock=env.clock).person("line", user.user_id)
    assert (lead.user_id, lead.name) == (user.user_id, "")
