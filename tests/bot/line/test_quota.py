"""The one LINE quota reader (bot.line.quota): the clock's reminder pass and the console's delivery page
use the same one, and a LINE API that stops answering costs it its timeout, not the pass."""

from __future__ import annotations

import math

import pytest
import redis
import urllib3

from bot.app import build_reminders, build_services
from bot.line.quota import LineQuota, quota_reader
from tests.bot.line.conftest import line_config
from tests.bot.line.helpers import TOKEN
from tests.fakes.line_api import CONSUMPTION, QUOTA, FakeLineApi


def test_the_reader_answers_the_month_s_limit_and_use(fake_line: FakeLineApi) -> None:
    read = quota_reader(fake_line.base_url, TOKEN)
    fake_line.quota = 1000
    assert read() == LineQuota(1000, 0) and read().left == 1000
    fake_line.quota = None  # LINE's "none": no monthly limit
    assert read() == LineQuota(None, 0) and read().left == math.inf
    assert [r.path for r in fake_line.recorded()] == [QUOTA, CONSUMPTION] * 4


def test_a_stalled_line_api_costs_the_reader_its_timeout_and_nothing_more(fake_line: FakeLineApi) -> None:
    gate = fake_line.stall(QUOTA)
    read = quota_reader(fake_line.base_url, TOKEN, timeout=0.3)
    try:
        with pytest.raises(urllib3.exceptions.TimeoutError):
            read()
        assert not gate.is_set()  # it gave up while LINE still held the request: it did not wait for LINE
        assert fake_line.arrivals(QUOTA) == 1  # one try: a timed-out GET is not sent again
    finally:
        gate.set()


def test_the_clock_and_the_console_share_the_reader_with_its_timeout(r: redis.Redis, redis_url: str,
                                                                     fake_line: FakeLineApi) -> None:
    svc = build_services(line_config(redis_url, fake_line))
    assert svc.line_quota is not None and build_reminders(svc).line_quota is svc.line_quota
    assert svc.line_quota() == LineQuota(fake_line.quota, 0)
    assert build_services(line_config(redis_url, fake_line, line_channel_access_token=None)).line_quota is None
