"""Observe on Slack: a slash command counted as a Slack webhook, a 429 from Slack's API counted by its
status and its delivery as a retry, then the post delivered (read from /metrics, parsed)."""

from __future__ import annotations

from tests.bot.scrape import moved, scrape
from tests.bot.slack.conftest import CH, SlackEnv


def test_a_slack_429_is_counted_and_the_post_retried(slack_env: SlackEnv) -> None:
    slack_env.fake.fail("chat.postMessage", status=429, headers={"Retry-After": "30"})
    before = scrape(slack_env.http)
    slack_env.setup_team()  # /kpi setup: its announcement is posted by the worker
    waiting = scrape(slack_env.http)
    assert moved(before, waiting, "crmbot_webhook_requests_total", channel="slack", status="200") == 1
    assert moved(before, waiting, "crmbot_webhook_seconds_count", channel="slack") == 1
    assert moved(before, waiting, "crmbot_api_responses_total", api="slack", status="429") == 1
    assert moved(before, waiting, "crmbot_deliveries_total", channel="slack", outcome="retry") == 1
    slack_env.clock.advance(31)
    assert slack_env.deliver() == 1
    after = scrape(slack_env.http)
    assert moved(waiting, after, "crmbot_api_responses_total", api="slack", status="200") == 1
    assert moved(waiting, after, "crmbot_deliveries_total", channel="slack", outcome="delivered") == 1
    assert len(slack_env.channel_messages(CH)) == 1


def test_readyz_names_the_content_and_the_catalog_when_either_is_missing(slack_env: SlackEnv) -> None:
    """Both are loaded (and checked) before the app serves, so only a Services without them reaches this."""
    http, svc = slack_env.http, slack_env.svc
    assert http.get("/readyz").get_data(as_text=True) == "ready\n"
    script, kpi = svc.script, svc.kpi
    try:
        svc.kpi = None
        res = http.get("/readyz")
        assert (res.status_code, res.get_data(as_text=True)) == (503, "kpi catalog: not loaded (Slack is configured)\n")
        svc.script = None  # type: ignore[assignment]
        res = http.get("/readyz")
        assert res.status_code == 503
        assert res.get_data(as_text=True).splitlines() == ["content: the diagnosis script is not loaded",
                                                          "kpi catalog: not loaded (Slack is configured)"]
        assert http.get("/healthz").status_code == 200  # liveness asks Redis only
    finally:
        svc.script, svc.kpi = script, kpi
    assert http.get("/readyz").status_code == 200
