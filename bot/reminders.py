"""Quarterly reminders that go out exactly once.

Slack: at the start of each of the team's quarters (the quarters of its business year, which may start
in any month; its first business day: not a Saturday, Sunday, Japanese public holiday or 1-3 January;
10:00 in the team's time zone) each registered team's channel gets a reminder
asking for the figures of the quarter that has just ended, named in the team's business year, with a
button that opens the KPI form for it; nudges follow after 7 and 14 days, only to teams that have not
reported that quarter. A team with area owners (全員参加): the kickoff names each area's owner and
lists the improvement actions decided last quarter; a nudge goes while areas are missing and mentions
only their owners; the last nudge, if some areas are in, posts the team's result instead, the missing
areas shown as not reported (once: the KPI core's close, :meth:`bot.kpi.KpiCore.close_quarter`, in the
team's hash slot). What a reminder says comes from the KPI core as data, rendered by the channel's
renderer the app factory injected into it: this module knows no channel's format.
LINE: once a quarter, on the first business day of January, April, July and October (10:00 Japan time),
every user who opted in gets one message: an A-tier result is offered its next theme; any other is reminded
of its point to fix and asked whether it has moved (yes / not yet / consult). Messages go by multicast,
which sends the same message to all its users, so users are grouped by what their message says (their
point to fix, one of ten, or the A tier's next theme): at most 500 users a request, each group its own
requests.

Exactly once: every (recipient, period, kind) has a ledger mark in the recipient's hash slot (the
period is the quarter the reminder is sent in, for Slack too, whose reminder asks for the one before). A
Lua script sets the mark and queues the message in the recipient's outbox in one step, so two
clocks, a clock killed mid-run, or ``crmbot remind`` run by hand at the same time can never queue
it twice, and a queued message is delivered by the outbox (retries with backoff, Retry-After,
recovery after a crash, parking of permanent failures; LINE multicasts carry an X-Line-Retry-Key).
A reminder is sent from its due time until ``grace`` later (default 3 days), never after.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.booking_reminders import send_due
from bot.followups import FollowupSender
from bot.kpi import KpiCore
from bot.kpi.areas import missing_areas
from bot.logs import uid
from bot.nudges import Nudges
from bot.outbox import Outbox
from bot.push_budget import PushBudget
from conversations import keys
from conversations.booking import Bookings
from conversations.jobs import Job
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.outputs import Reminder
from conversations.redis_ops import runner
from conversations.teams import Report, Team, TeamStore
from conversations.transports import LineBatchState, Transport
from scoring import score
from scoring.periods import DEFAULT_TZ, Quarter, kickoff_day, local_time, quarter_of, zone

log = logging.getLogger(__name__)
DAY = 86400
LEDGER_TTL = 400 * DAY  # a ledger mark outlives its period; then it expires on its own
LINE_BATCH = 500  # LINE's multicast limit
LINE_TZ = DEFAULT_TZ  # LINE users are reminded on Japan time
RECENT = 30 * DAY  # someone who took the diagnosis this recently is not asked to retake it yet


@dataclass(frozen=True)
class ReminderSettings:
    hour: int = 10  # local time of the kickoff reminder
    nudges: tuple[int, ...] = (7, 14)  # days after the kickoff
    cadence: str = "quarterly"  # or "half-yearly" (a team's first and third quarters of the calendar's count:
    # January and July for calendar quarters, March and September for a year from March)
    grace: float = 3 * DAY  # a reminder missed while no clock ran is still sent within this window


@dataclass
class Summary:
    """What a pass did. It only queues: the worker delivers (its failures are in `crmbot outbox`)."""

    queued: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"queued {len(self.queued)}, skipped {len(self.skipped)}"]
        lines += [f"  queued   {x}" for x in self.queued]
        lines += [f"  skipped  {x}: {why}" for x, why in self.skipped]
        return "\n".join(lines)


def kickoff_at(quarter: Quarter, tz: str, hour: int = 10) -> float:
    """The first business day of the quarter's first month (no weekend, Japanese public holiday or
    1-3 January: :func:`scoring.periods.kickoff_day`), at ``hour`` local time."""
    return local_time(kickoff_day(quarter), hour, tz)


def schedule(quarter: Quarter, tz: str, settings: ReminderSettings) -> list[tuple[str, float]]:
    """(kind, due time) of the Slack reminders of one quarter."""
    if settings.cadence == "half-yearly" and quarter.q not in (1, 3):
        return []
    start = kickoff_at(quarter, tz, settings.hour)
    return [("kickoff", start)] + [(f"nudge{d}", start + d * DAY) for d in settings.nudges]


def _due(now: float, due: float, grace: float) -> bool:
    return due <= now <= due + grace


class Reminders:
    def __init__(
        self,
        client: Any,
        teams: TeamStore,
        outbox: Outbox,
        *,
        locale: str = "ja",
        settings: ReminderSettings | None = None,
        line_quota: Callable[[], Any] | None = None,  # LINE's quota this month (bot.line.quota), or raises
        installed: Callable[[str], bool] | None = None,  # many workspaces: is the app installed in it?
        kpi: KpiCore | None = None,  # the KPI core: what a team's reminder says, the last nudge's result
        bookings: Bookings | None = None,  # consultation bookings: their reminders (bot/booking_reminders.py)
        budget: PushBudget | None = None,  # the month's push budget: the reminders asked for count against it
        followups: FollowupSender | None = None,  # follow-ups on a point to fix (bot/followups.py): first
        nudges: Nudges | None = None,  # drop-off nudges (bot/nudges.py): after the reminders and follow-ups
    ) -> None:
        self.r = runner(client)
        self.teams = teams
        self.outbox = outbox
        self.locale = locale
        self.settings = settings or ReminderSettings()
        self.line_quota = line_quota
        self.installed = installed
        self.kpi = kpi
        self.bookings = bookings
        self.budget = budget
        self.followups = followups
        self.nudges = nudges

    def run(self, now: float, *, dry_run: bool = False) -> Summary:
        summary = Summary()
        if self.outbox.handles(Transport.SLACK) and self.kpi is not None:
            self._slack(now, dry_run, self.kpi, summary)
        if self.outbox.handles(Transport.LINEBATCH):
            self._line(now, dry_run, summary)
        if self.bookings is not None and self.outbox.handles(Transport.LINE):
            summary.queued += send_due(self.bookings, self.outbox, now, dry_run=dry_run, budget=self.budget)
        # what the owner did not ask for after what they did: the follow-ups they opted in to, then the nudges
        for pushes in (self.followups, self.nudges):
            if pushes is not None and self.outbox.handles(Transport.LINE):
                queued, skipped = pushes.run(now, dry_run=dry_run)
                summary.queued += queued
                summary.skipped += skipped
        return summary

    # ---- Slack ----------------------------------------------------------------------------------

    def _slack(self, now: float, dry_run: bool, kpi: KpiCore, summary: Summary) -> None:
        installed: dict[str, bool] = {}  # per workspace, read once a pass
        for team in self.teams.all_teams():
            running = quarter_of(now, team.tz, team.fy_start)  # the reminders of its start ...
            asked = running.previous()  # ... ask for the quarter that has just ended
            for kind, due in schedule(running, team.tz, self.settings):
                if not _due(now, due, self.settings.grace):
                    continue
                label = f"slack {team.ref.workspace}/{team.ref.channel} {kind} for {asked}"
                subject = Subject(Transport.SLACK, f"{team.ref.workspace}.{team.ref.channel}")
                ledger = keys.reminder_sent(subject, str(running), kind)
                if self.r.exists(ledger):
                    continue  # sent already: not news for the summary
                if not team.reminders:
                    summary.skipped.append((label, "reminders paused by the team"))
                    continue
                workspace = team.ref.workspace
                if self.installed is not None and workspace not in installed:
                    installed[workspace] = self.installed(workspace)
                if not installed.get(workspace, True):
                    summary.skipped.append((label, "the app is not installed in the workspace (uninstalled)"))
                    continue
                report = self.teams.report(team.ref, asked)
                owners = self.teams.owners(team.ref)
                missing = missing_areas(kpi.catalog, report) if owners else []
                if kind != "kickoff" and report is not None and (not owners or not missing or report.posted):
                    summary.skipped.append((label, "already reported"))
                    continue
                if kind == self._last_nudge() and owners and report is not None:
                    self._close(kpi, team, asked, report, owners, ledger, label, now, dry_run, summary)
                    continue
                self._remind(kpi, team, asked, kind, owners, missing, subject, ledger, label, dry_run, summary)

    def _last_nudge(self) -> str:
        return f"nudge{max(self.settings.nudges)}" if self.settings.nudges else ""

    def _remind(self, kpi: KpiCore, team: Team, asked: Quarter, kind: str, owners: dict[str, str],
                missing: list[str], subject: Subject, ledger: str, label: str, dry_run: bool, summary: Summary) -> None:
        outputs = kpi.reminder(team, asked, kind, owners, missing)
        if dry_run:
            summary.queued.append(f"{label} (dry run: would queue)")
            return
        job = self.outbox.to_subject(subject, outputs)
        if not self.outbox.put_once(ledger, job, ttl=int(LEDGER_TTL)):
            return  # another clock claimed it a moment ago
        summary.queued.append(label)

    def _close(self, kpi: KpiCore, team: Team, asked: Quarter, report: Report, owners: dict[str, str], ledger: str,
               label: str, now: float, dry_run: bool, summary: Summary) -> None:
        """The last nudge of a team with owners and some areas in: its result, the missing areas shown
        as not reported. The post is committed by the KPI core's close (once, against the figures it
        was rendered from); the ledger mark after it (a crash in between: the next pass finds it posted)."""
        if dry_run:
            missing = len(missing_areas(kpi.catalog, report))
            summary.queued.append(f"{label} (dry run: would post the result, {missing} area(s) missing)")
            return
        done, current = kpi.close_quarter(team, asked, report, owners, now)
        self.r.set(ledger, "closed", nx=True, ex=int(LEDGER_TTL))
        if done == 1:
            summary.queued.append(f"{label} (result, {len(missing_areas(kpi.catalog, current))} area(s) missing)")
        else:
            summary.skipped.append((label, "already reported"))

    # ---- LINE -----------------------------------------------------------------------------------

    def _line_period(self, now: float) -> Quarter | None:
        quarter = quarter_of(now, LINE_TZ)
        if self.settings.cadence == "half-yearly" and quarter.q not in (1, 3):
            return None
        if not _due(now, kickoff_at(quarter, LINE_TZ, self.settings.hour), self.settings.grace):
            return None
        return quarter

    def _opted_in(self, quarter: Quarter, now: float, dry_run: bool, summary: Summary) -> dict[Reminder, list[str]]:
        """Users to remind, grouped by what their reminder says (:func:`_reminder_of`)."""
        quarter_start = datetime(quarter.year, quarter.first_month, 1, tzinfo=zone(LINE_TZ)).timestamp()
        by_group: dict[Reminder, list[str]] = defaultdict(list)
        refs = sorted(x.decode() if isinstance(x, bytes) else x for x in self.r.sscan_iter(keys.REMIND_INDEX))
        for chunk in _chunks([r for r in refs if r.startswith("line:")], 500):
            subjects = [Subject(Transport.LINE, ref.split(":", 1)[1]) for ref in chunk]
            with self.r.pipeline(transaction=False) as p:
                for s in subjects:
                    p.get(keys.conv(s))
                    p.exists(keys.reminder_sent(s, str(quarter)))
                rows = p.execute()
            gone = []
            for i, s in enumerate(subjects):
                conv, sent = Conv.from_json(rows[2 * i]), rows[2 * i + 1]
                if not conv.remind:
                    gone.append(f"line:{s.user_id}")
                    continue
                if sent or not conv.last:
                    continue
                if conv.finished >= quarter_start or now - conv.finished < RECENT:
                    summary.skipped.append((f"line {uid(s.user_id)} {quarter}", "took it less than 30 days ago"))
                    continue
                by_group[_reminder_of(conv.last)].append(s.user_id)
            if gone and not dry_run:
                self.r.srem(keys.REMIND_INDEX, *gone)
        return by_group

    def _quota_left(self) -> float:
        if self.line_quota is None:
            return math.inf
        return float(self.line_quota().left)

    def _line(self, now: float, dry_run: bool, summary: Summary) -> None:
        quarter = self._line_period(now)
        if quarter is None:
            return
        by_group = self._opted_in(quarter, now, dry_run, summary)
        total = sum(len(v) for v in by_group.values())
        if total == 0:
            return
        left = self._quota_left()
        queued: list[Job] = []
        for group in sorted(by_group, key=_group_order):
            users = by_group[group]
            name = _group_name(group)
            allowed = users[: int(min(len(users), left))]
            left -= len(allowed)
            for user in users[len(allowed):]:
                summary.skipped.append((f"line {uid(user)} {quarter}", "monthly message quota would be exceeded"))
            for batch in _chunks(allowed, LINE_BATCH):
                label = f"line multicast {quarter} {name} ({len(batch)} users)"
                if dry_run:
                    summary.queued.append(f"{label} (dry run: would queue)")
                    continue
                job = self._line_batch(quarter, group, batch)
                if job is None:
                    continue
                queued.append(job)
                summary.queued.append(f"line multicast {quarter} {name} ({len(job.batch.rcpt)} users)")
        # Woken together once every batch is queued: the worker sends them side by side, up to LINE's
        # rate, rather than one by one as the pass queues them.
        self.outbox.wake(queued)

    def _line_batch(self, quarter: Quarter, group: Reminder, users: list[str]) -> Job | None:
        """Queue one multicast, then claim its users: the batch job is written first, so a crash at
        any point leaves either unclaimed users (sent by a later pass) or a batch whose claimed users
        the worker still sends to (the transport sends only to users whose mark names the batch).
        No worker looks at the batch before its users are claimed: it is woken only then, with the
        pass's other batches (or, after a crash here, found by its recovery mark once the lease has
        passed)."""
        subject = Subject(Transport.LINEBATCH, str(uuid.uuid4()))
        ledger = keys.reminder_sent(subject, str(quarter), "batch")
        job = self.outbox.to_subject(subject, [group], state=LineBatchState(users, str(quarter)))
        if not self.outbox.put_once(ledger, job, ttl=int(LEDGER_TTL), wake=False):
            return None
        with self.r.pipeline(transaction=False) as p:
            for u in users:
                p.set(keys.reminder_sent(Subject(Transport.LINE, u), str(quarter)), job.id, nx=True,
                      ex=int(LEDGER_TTL))
            claimed = p.execute()
        job.batch.rcpt = [u for u, ok in zip(users, claimed, strict=True) if ok]
        self.outbox.update(job)
        if self.budget is not None and job.batch.rcpt:  # asked for: never held, counted (once, by its job id)
            self.budget.reserve(job.id, "retake", job.received, n=len(job.batch.rcpt), must=True)
        return job


def _reminder_of(answers: str) -> Reminder:
    """What one user's reminder says, from their last result: an A tier its next theme (whatever its one
    non-A answer), any other its point to fix (a tier of its own is not said: B and C share a group)."""
    result = score(answers)
    if result.tier == "A" or result.next_point is None:
        return Reminder("A")
    return Reminder("", result.next_point)


def _group_order(group: Reminder) -> tuple[int, int]:
    return (-1, 0) if group.point is None else (0, group.point)


def _group_name(group: Reminder) -> str:
    return f"tier {group.tier}" if group.point is None else f"point Q{group.point + 1}"


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]

