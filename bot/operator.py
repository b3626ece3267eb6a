"""The operator is told of a consultation request at once: a brief in their Slack channel.

With ``CRMBOT_OPERATOR_SLACK_CHANNEL`` set (and Slack configured), :func:`bot.app.make_consult_hook`
gives the hook the worker's analytics sink calls when a lead's consultation request is first applied
(bot/analytics_sink.py, ``on_first_consult``): a :class:`ConsultBriefs`, which queues one post, a
*brief* so the first call starts prepared. This module is core: it hands the lead's data
(:class:`~conversations.analytics.Lead`) to the renderer the app factory injected (Slack's is
:class:`bot.slack.brief.BriefRenderer`: the words and Block Kit) and commits what it returns.

Exactly once per lead: the post is a :class:`~conversations.jobs.Job` in the operator channel's
mailbox (``{op:<channel>}``), queued by :meth:`bot.outbox.Outbox.put_once` together with a ledger
mark in the same hash slot (``conversations.keys.consult_briefed``). The sink may call the hook again
(a worker that died after running it, before marking the lead told): the mark makes that a no-op. The
worker delivers the post like any other (retries, parking, no duplicate after a lost answer).

The hook is sync (the sink runs it in a thread): it uses its own redis-py client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from bot.handoff import BRIEF
from bot.logs import uid
from bot.outbox import Outbox
from conversations import keys
from conversations.analytics import Lead
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.transports import SlackState, Transport

log = logging.getLogger(__name__)
BRIEF_TTL = 180 * 86400  # seconds a lead's ledger mark is kept (far beyond any retry of its job)
WORKSPACE = "op"  # the Slack job's workspace part with SLACK_BOT_TOKEN (pacing keys only): the channel ID is the
# address; with OAuth it is the operator's workspace (CRMBOT_OPERATOR_SLACK_TEAM), whose token sends it

ConsultHook = Callable[[Lead], None]
BriefRender = Callable[[Lead], list[dict[str, Any]]]  # a lead -> the outputs of the operator channel's job


class ConsultBriefs:
    """Queues the brief of each lead's consultation request, exactly once per lead."""

    def __init__(self, outbox: Outbox, render: BriefRender, channel: str, *,
                 clock: Callable[[], float] = time.time, workspace: str = WORKSPACE) -> None:
        self.outbox = outbox
        self.render = render
        self.channel = channel
        self.clock = clock
        self.workspace = workspace

    def __call__(self, lead: Lead) -> None:
        # once posted, the brief's ts is the lead's thread (bot/handoff.py): its role and person say so
        person = keys.lead_ref(Subject(Transport.parse(lead.channel), lead.user_id)) if lead.channel == "line" else ""
        state = SlackState(lead=lead.id, person=person, role=BRIEF if person else "")
        job = Job.new(Transport.SLACK, f"{self.workspace}.{self.channel}", keys.operator_tag(self.channel),
                      self.render(lead), self.clock(), state=state)
        if self.outbox.put_once(keys.consult_briefed(self.channel, lead.id), job, ttl=BRIEF_TTL):
            log.info("operator: consultation brief queued for %s", uid(lead.user_id))
        else:
            log.info("operator: consultation brief for %s was already queued", uid(lead.user_id))


def nobody(lead: Lead) -> None:
    """The hook without an operator channel: the request is recorded only (the console's badge shows it)."""
    return None
