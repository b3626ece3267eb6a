"""Leads (one per diagnosis, :class:`conversations.analytics.Lead`) as the console shows them, on its
pages and in ``leads.csv`` alike: who, when, how far, the tier, the answers, the point to fix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import g, has_request_context

from bot.console import fmt, refs
from bot.logs import uid
from conversations.analytics import LEAD_STATUSES, STATUSES, Analytics, Lead
from conversations.content import Script
from conversations.inputs import source_name
from conversations.lead_query import SEARCH_MAX, SORTS, LeadQuery, Query, parse_cursor
from scoring import TIERS

PAGE_SIZE = 50
# The channels a filter may name. "web" is the try-it page's: its users are tests, left out of "all"
# and shown only when asked for, so a newcomer can see their own try in the overview.
CHANNELS = ("line", "slack", "web")


def analytics(svc: Any) -> Analytics:
    """The request's figures reader: one per request (kept in ``flask.g``), so a page reads each figures
    shard once however many of its parts show a figure; a new one outside a request."""
    if not has_request_context():
        return Analytics(svc.redis, clock=svc.clock, expiry=svc.config.conversation_ttl)
    found = g.get("crmbot_analytics")
    if found is None:
        found = g.crmbot_analytics = Analytics(svc.redis, clock=svc.clock, expiry=svc.config.conversation_ttl,
                                               keep=True)
    return found


@dataclass(frozen=True)
class Filters:
    """A leads filter from a query string; ``error`` names what was malformed (then nothing applies)."""

    tier: str | None = None
    progress: str | None = None  # finished | in_progress | stopped
    consult: str | None = None  # a consultation status
    start: date | None = None
    end: date | None = None
    channel: str | None = None
    page: int = 1
    search: str = ""
    sort: str = "date"
    source: str | None = None  # where the person came from (「診断 NAME」)
    error: str = ""
    after: str = ""  # the cursor of the page before (the next page's link): read from there, not by its number

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> Filters:
        def pick(name: str, allowed: Sequence[str]) -> str | None:
            value = (args.get(name) or "").strip()
            if value and value not in allowed:
                raise ValueError(name)
            return value or None

        try:
            start, end = fmt.day_range(args.get("from"), args.get("to"), 0, None)
            page = int(args.get("page") or 1)
            if not 1 <= page <= 10_000:
                raise ValueError("page")
            search = " ".join((args.get("q") or "").split())[:SEARCH_MAX]
            after = (args.get("after") or "")[:60]
            return cls(pick("tier", TIERS), pick("progress", LEAD_STATUSES), pick("consult", STATUSES), start, end,
                       pick("channel", CHANNELS), page, search, pick("sort", SORTS) or "date",
                       source=pick_source(args), after=after if parse_cursor(after) else "")
        except ValueError as e:
            return cls(error=str(e) or "filter")

    def query(self, **changes: Any) -> dict[str, str]:
        """The filter as query arguments (for links: the next page, the CSV)."""
        out = {"tier": self.tier, "progress": self.progress, "consult": self.consult,
               "from": self.start.isoformat() if self.start else None, "to": self.end.isoformat() if self.end else None,
               "channel": self.channel, "source": self.source, "q": self.search,
               "sort": self.sort if self.sort != "date" else None, "page": str(self.page) if self.page > 1 else None,
               "after": self.after or None}
        out.update(changes)
        return {k: v for k, v in out.items() if v}

    def as_query(self) -> Query:
        return Query(tier=self.tier, progress=self.progress, consult=self.consult, start=self.start, end=self.end,
                     channel=self.channel, search=self.search, sort=self.sort, source=self.source, after=self.after)

    def kwargs(self) -> dict[str, Any]:
        return {"tier": self.tier, "status": self.progress, "consult": self.consult, "start": self.start,
                "end": self.end, "channel": self.channel, "source": self.source}


def pick_source(args: Mapping[str, str]) -> str | None:
    """``?source=``: a source name (as ``crmbot line links`` names them), else ValueError("source")."""
    value = (args.get("source") or "").strip()
    if value and source_name(value) != value:
        raise ValueError("source")
    return value or None


def pick_segment(args: Mapping[str, str], name: str) -> str | None:
    """``?variant=EXPERIMENT:VARIANT`` or ``?version=V``: the value, None when not given; ValueError(name)
    when it is not one (a separator in it, too long, or a variant without its experiment)."""
    value = (args.get(name) or "").strip()
    if not value:
        return None
    if len(value) > 100 or any(c in value for c in "|,~") or not value.isprintable():
        raise ValueError(name)
    if name == "variant" and not all(value.partition(":")[::2]):
        raise ValueError(name)
    return value


def query(svc: Any) -> LeadQuery:
    return LeadQuery(analytics(svc), uid)


def ref(lead: Lead) -> str:
    """The lead's id in URLs (never the LINE user ID: bot/console/refs.py)."""
    return refs.ref(lead.id)


def pages(current: int, last: int, around: int = 2) -> list[int | None]:
    """The page numbers a pager shows: the first, the last, ``around`` either side of the current one, and
    None for each gap ("...")."""
    shown = sorted({1, last, *range(max(1, current - around), min(last, current + around) + 1)})
    out: list[int | None] = []
    for n in shown:
        if out and n - (out[-1] or 0) > 1:
            out.append(None)
        out.append(n)
    return out


def advice(lead: Lead, script: Script) -> str:
    """The advice the owner was given for the point to fix: at the level of their answer (B, or C/D)."""
    if lead.point is None:
        return ""
    return script.questions[lead.point].advice_for(lead.answers[lead.point])


def who(lead: Lead) -> str:
    """The person: the LINE display name when known; otherwise only a hash of the ID (a Slack user ID is
    shown: it is a workspace member's handle, not a private identifier)."""
    if lead.name:
        return lead.name
    if lead.channel == "slack":
        return lead.user_id.split(".", 1)[-1]
    return uid(lead.user_id)


def progress(lead: Lead, t: Mapping[str, str], now: float, expiry: float) -> str:
    if lead.number == 0 and not lead.reached and not lead.answers:  # asked before any diagnosis: no answers
        return t["progress_asked"]
    state = lead.status(now, expiry)
    if state == "finished":
        return t["progress_finished"]
    q = max(1, lead.reached)
    return t["progress_in_progress" if state == "in_progress" else "progress_stopped"].format(q=q)


def point(lead: Lead, script: Script) -> str:
    """The one point to fix: "Q3 topic"; with ten A's, the first line of the tier's next theme; "" while
    unfinished."""
    if not lead.is_finished:
        return ""
    if lead.point is None:
        tier = script.tiers.get(lead.tier or "A")
        return tier.next_theme.strip().split("\n", 1)[0] if tier else ""
    return f"Q{lead.point + 1} {script.questions[lead.point].topic}"


def consult_label(lead: Lead, t: Mapping[str, str]) -> str:
    return t[f"status_{lead.consult}"] if lead.consult else ""


def csv_header(t: Mapping[str, str], script: Script) -> list[str]:
    """The leads page's columns, with the person as a hash of the ID (the same in every row of one person)
    and the diagnosis' number for them (1, 2 ...: retakes), but never a raw user ID."""
    return [t["channel"], t["person_id"], t["diagnosis_no"], t["who"], t["started_at"], t["finished_at"],
            t["progress"], t["tier"], t["a_count"], t["answers"], t["point"], t["remind"], t["consult"],
            t["consult_at"], t["source"], *(q.label for q in script.qualify.questions)]


def csv_row(lead: Lead, t: Mapping[str, str], script: Script, now: float, expiry: float) -> list[str]:
    from bot.console.tools import cell

    return [lead.channel, uid(lead.user_id), str(lead.number), cell(who(lead)), fmt.when(lead.started),
            fmt.when(lead.finished), progress(lead, t, now, expiry), lead.tier or "",
            str(lead.a_count) if lead.is_finished else "", lead.answers, point(lead, script),
            t["yes"] if lead.remind else t["no"], consult_label(lead, t), fmt.when(lead.consult_at), lead.source,
            *(cell(answer) for _, answer in qualification(lead, script, t))]


def qualification(lead: Lead, script: Script, t: Mapping[str, str]) -> list[tuple[str, str]]:
    """The script's qualification questions with the lead's answers, in order: (label, answer), the answer
    the choice, "skipped", or "" where not answered."""
    answered = [choice or t["skipped"] for _, choice in script.qualify.answered(lead.qual)]
    answered += [""] * (len(script.qualify.questions) - len(answered))
    return [(q.label, a) for q, a in zip(script.qualify.questions, answered, strict=True)]


def compare(leads: Sequence[Lead]) -> list[list[str]]:
    """Retakes side by side: per question, each diagnosis' answer, marked "+" where it improved on the
    previous diagnosis and "-" where it fell back (A is best)."""
    rows = []
    for q in range(10):
        row, before = [], ""
        for lead in leads:
            now = lead.answers[q] if q < len(lead.answers) else ""
            mark = ""
            if now and before:
                mark = "+" if now < before else "-" if now > before else ""
            row.append(now + mark)
            before = now or before
        rows.append(row)
    return rows
