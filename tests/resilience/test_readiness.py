"""/readyz follows Redis: 200 while it answers, 503 naming it while it is stopped, 200 again once it is back
(the same server restarted, persistence on); /healthz alike; /metrics still answers meanwhile, saying
Redis did not (crmbot_redis_up 0)."""

from __future__ import annotations

from bot.app import build_services, create_app
from tests.bot.line.conftest import line_config
from tests.bot.scrape import scrape, value
from tests.conftest import FakeClock
from tests.fakes.line_api import FakeLineApi
from tests.redis_server import RedisServer


def test_readyz_goes_503_while_redis_is_stopped_and_200_once_it_is_back(
        persistent_redis: RedisServer, fake_line: FakeLineApi) -> None:
    svc = build_services(line_config(persistent_redis.url, fake_line), clock=FakeClock())
    http = create_app(services=svc).test_client()

    def probe(path: str) -> tuple[int, str]:
        res = http.get(path)
        return res.status_code, res.get_data(as_text=True)

    assert probe("/readyz") == (200, "ready\n")
    assert probe("/healthz") == (200, "ok")
    assert value(scrape(http), "crmbot_redis_up") == 1
    persistent_redis.stop()
    assert probe("/readyz") == (503, "redis unavailable\n")
    assert probe("/healthz") == (503, "redis unavailable")
    down = scrape(http)
    assert value(down, "crmbot_redis_up") == 0
    assert ("crmbot_queue_due", frozenset()) not in down  # no figure rather than a wrong one
    persistent_redis.start()
    assert probe("/readyz") == (200, "ready\n")
    assert probe("/healthz") == (200, "ok")
    assert value(scrape(http), "crmbot_queue_due") == 0
