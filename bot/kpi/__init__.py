"""The KPI method's core, channel-neutral: no adapter, no web framework, no Slack or LINE SDK.

    figures   figures as typed -> numbers, checked against the catalog (problems as data, not words)
    areas     which areas of a quarter are in, who reports which, who reported
    messages  what the method says, as typed records (the result of a quarter, a reminder, ...)
    core      KpiCore: submit a report or an owner's areas (merged, version-checked, posted once or
              told to the reporter), targets, owners, actions, close a quarter, scores and history

An adapter parses its channel's input into the core's (the Slack modal's values), and renders the
core's messages: the app factory (:mod:`bot.app`) injects the renderer, so the core commits each post
with the change it announces, in one Lua script, without knowing the channel.
"""

from bot.kpi.core import History, KpiCore, Refused, ReportForm, TeamStatus, score_stored
from bot.kpi.messages import KpiMessage, Output, Render

__all__ = ["History", "KpiCore", "KpiMessage", "Output", "Refused", "Render", "ReportForm", "TeamStatus",
           "score_stored"]
