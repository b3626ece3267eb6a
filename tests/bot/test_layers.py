"""The shape the import-linter contracts hold (pyproject.toml), checked on the import graph itself (grimp,
which import-linter is built on): the KPI core, the reminders, the clock and the operator's hook reach
no adapter, no web framework and no chat SDK, directly or through any module they import; the console
reaches the KPI method through the core, never through Slack. A breach names the chain that causes it."""

from __future__ import annotations

import grimp
import pytest

ADAPTERS_AND_FRAMEWORKS = ("bot.slack", "bot.line", "bot.console", "bot.app", "bot.cli", "bot.web",
                           "flask", "werkzeug", "waitress", "slack_bolt", "slack_sdk", "linebot")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("bot", "conversations", "scoring", include_external_packages=True)


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _chain(graph: grimp.ImportGraph, source: str, target: str) -> str:
    chain = graph.find_shortest_chain(importer=source, imported=target) or ()
    return " -> ".join(chain)


@pytest.mark.parametrize("core", ["bot.kpi", "bot.reminders", "bot.clock", "bot.operator", "bot.core", "bot.outbox",
                                  "bot.worker", "bot.analytics_sink", "bot.webchat", "bot.scripts",
                                  "bot.metrics", "bot.error_reports"])
def test_a_core_module_reaches_no_adapter_framework_or_sdk(graph: grimp.ImportGraph, core: str) -> None:
    modules = [core, *graph.find_descendants(core)]
    reached = {m for source in modules for m in graph.find_upstream_modules(source)}
    bad = sorted(m for m in reached if _within(m, ADAPTERS_AND_FRAMEWORKS))
    assert bad == [], [_chain(graph, source, m) for m in bad for source in modules if _chain(graph, source, m)]


def test_the_kpi_core_is_a_package_of_its_own_that_the_slack_side_uses(graph: grimp.ImportGraph) -> None:
    """The method moved out of Slack: the Slack listeners, the reminders and the console import the core."""
    assert {"bot.kpi.core", "bot.kpi.figures", "bot.kpi.areas", "bot.kpi.messages"} <= graph.find_descendants("bot.kpi")
    for user in ("bot.slack.listeners.kpi", "bot.slack.listeners.method", "bot.slack.listeners.home",
                 "bot.slack.results", "bot.reminders", "bot.console.teams"):
        assert graph.chain_exists(importer=user, imported="bot.kpi.core"), user


def test_the_console_reaches_the_kpi_method_through_the_core_not_through_slack(graph: grimp.ImportGraph) -> None:
    reached = {m for source in ["bot.console", *graph.find_descendants("bot.console")]
               for m in graph.find_upstream_modules(source)}
    assert sorted(m for m in reached if _within(m, ("bot.slack", "bot.line", "slack_bolt", "slack_sdk"))) == []
    assert "bot.kpi.core" in reached


def test_the_clock_process_needs_no_bolt_app(graph: grimp.ImportGraph) -> None:
    """`crmbot clock` runs bot.clock and bot.reminders over the KPI core; Bolt (and the app factory that
    builds it) is not among what they import."""
    for module in ("bot.clock", "bot.reminders"):
        reached = graph.find_upstream_modules(module)
        assert not any(_within(m, ("slack_bolt", "bot.app", "bot.slack")) for m in reached), module


def test_metrics_and_error_reports_each_have_one_module(graph: grimp.ImportGraph) -> None:
    """prometheus_client is imported by bot.metrics alone (the rest calls its small interface), sentry_sdk by
    bot.error_reports alone, and conversations/ and scoring/ reach neither."""
    assert graph.find_modules_that_directly_import("prometheus_client") == {"bot.metrics"}
    assert graph.find_modules_that_directly_import("sentry_sdk") == {"bot.error_reports"}
    for pure in ("conversations", "scoring"):
        reached = {m for source in [pure, *graph.find_descendants(pure)] for m in graph.find_upstream_modules(source)}
        assert not any(_within(m, ("prometheus_client", "sentry_sdk", "bot")) for m in reached), pure
