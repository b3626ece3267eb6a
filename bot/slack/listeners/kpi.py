"""The KPI feature: /kpi and its subcommands, the report and targets modals, the open-report button."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App

from bot.logs import uid
from bot.slack import blocks as B
from bot.slack.deps import Deps
from bot.slack.listeners.common import ephemeral, post_to_team, score, score_report
from bot.slack.payload import json_object, obj, sender_workspace, strings
from bot.slack.texts import fy_month, t
from conversations.errors import InvalidInput, StoreUnavailable
from conversations.keys import TeamRef, ViewRef
from conversations.teams import Report, Team
from scoring.kpi import KpiResult, compare, missing_required
from scoring.periods import DEFAULT_TZ, Quarter, parse_fy_start, quarter_of, reportable, zone

log = logging.getLogger(__name__)



def plain_name(text: str) -> str:
    """A team name safe in mrkdwn: no <, > or & (so no mentions like <!channel>), at most 80 chars."""
    return re.sub(r"[<>&*_~`]", "", text).strip()[:80]


def open_report(deps: Deps, trigger_id: str, team: Team, quarter: Quarter | None = None) -> None:
    """The report modal: the last ended quarter preselected (or the one a reminder's button names,
    if it is still among the choices), earlier ones offered for late entries, never the running one."""
    choices = reportable(deps.clock(), team.tz)
    initial = quarter if quarter in choices else choices[0]
    report = deps.teams.report(team.ref, initial)
    view = B.report_modal(deps.catalog, deps.locale, team, choices, initial, report.values if report else {},
                          deps.teams.targets(team.ref))
    deps.client.views_open(trigger_id=trigger_id, view=view)


# ---- /kpi ----------------------------------------------------------------------------------------


def kpi_command(ack: Ack, command: dict[str, Any], deps: Deps) -> None:
    ack()
    ids = strings(command, "team_id", "channel_id", "user_id", "trigger_id")
    try:
        ref = TeamRef(ids[0], ids[1]) if ids else None
    except InvalidInput:
        ref = None
    if ids is None or ref is None:
        log.warning("slack: /kpi without a valid team, channel, user or trigger ignored")
        return
    locale, teams = deps.locale, deps.teams
    user, trigger_id = ids[2], ids[3]
    # split on any whitespace: Japanese input methods type U+3000 (full-width) for a space
    text = command.get("text")
    words = (text if isinstance(text, str) else "").split(None, 1)
    sub = words[0].lower() if words else ""
    rest = words[1] if len(words) > 1 else ""
    if sub == "setup":
        channel_name = command.get("channel_name")
        setup(deps, ref, user, rest.strip(), channel_name if isinstance(channel_name, str) else "")
        return
    if sub in ("help", "?"):
        ephemeral(deps, ref, user, t(locale, "help"))
        return
    team = teams.get(ref)
    if team is None:
        ephemeral(deps, ref, user, t(locale, "not_a_team"))
        return
    if sub == "":
        open_report(deps, trigger_id, team)
    elif sub == "targets":
        deps.client.views_open(trigger_id=trigger_id,
                               view=B.targets_modal(deps.catalog, locale, team, teams.targets(ref)))
    elif sub == "history":
        text, blks = B.history_blocks(deps.catalog, locale, team, history(deps, ref))
        ephemeral(deps, ref, user, text, blks)
    elif sub == "reminders" and rest.strip().lower() in ("on", "off"):
        on = rest.strip().lower() == "on"
        teams.set_reminders(ref, on)
        ephemeral(deps, ref, user, t(locale, "reminders_on" if on else "reminders_off"))
    else:
        ephemeral(deps, ref, user, t(locale, "help"))


def history(deps: Deps, ref: TeamRef, count: int = 8) -> list[tuple[Quarter, KpiResult]]:
    """The team's last ``count`` reported quarters, each scored as when it was reported (its targets;
    the quarter before it for the improve rule)."""
    reports: dict[Quarter, Report | None] = {}

    def report(q: Quarter) -> Report | None:
        if q not in reports:
            reports[q] = deps.teams.report(ref, q)
        return reports[q]

    rows = []
    for q in deps.teams.quarters(ref)[-count:]:
        rep = report(q)
        if rep is not None:
            rows.append((q, score_report(deps, rep, ref, report(q.previous()))))
    return rows


def setup(deps: Deps, ref: TeamRef, user: str, rest: str, channel_name: str = "") -> None:
    locale = deps.locale
    tz = DEFAULT_TZ
    fy: int | None = None
    words = []
    for word in rest.split():
        if word.lower().startswith("tz="):
            tz = word[3:]
        elif word.lower().startswith("fy="):
            try:
                fy = parse_fy_start(word[3:])
            except ValueError:
                ephemeral(deps, ref, user, t(locale, "bad_fy"))
                return
        else:
            words.append(word)
    try:
        zone(tz)
    except ValueError:
        ephemeral(deps, ref, user, t(locale, "bad_tz", tz=tz[:40]))
        return
    name = plain_name(" ".join(words))
    if not name:
        existing = deps.teams.get(ref)
        # else the channel's name as the slash command carried it (no API call from the web tier)
        name = existing.name if existing else plain_name(channel_name) or ref.channel
    team, created = deps.teams.register(ref, name, tz, user, deps.clock(), fy)
    settings = {"name": team.name, "tz": team.tz, "fy": fy_month(locale, team.fy_start)}
    if created:
        # the announcement is queued first: a failed (best-effort) ephemeral must not lose it
        announcement = t(locale, "setup_announce", user=user, name=team.name)
        post_to_team(deps, team, announcement, [B.section(announcement)])
        ephemeral(deps, ref, user, t(locale, "setup_done", **settings))
    else:
        ephemeral(deps, ref, user, t(locale, "setup_updated", **settings))


# ---- the open-report button (reminders) ----------------------------------------------------------


def open_report_button(ack: Ack, body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    ack()
    data = json_object(action.get("value"))
    trigger_id = body.get("trigger_id")
    try:
        team_id = data.get("team")
        ref = TeamRef.parse(team_id) if isinstance(team_id, str) else None
        quarter = Quarter.parse(data.get("quarter", ""))
    except (ValueError, InvalidInput):
        return
    if ref is not None and ref.workspace != sender_workspace(body):
        log.warning("slack: a report button naming another workspace's team ignored")
        return
    team = deps.teams.get(ref) if ref is not None else None
    if team is not None and isinstance(trigger_id, str) and trigger_id:
        open_report(deps, trigger_id, team, quarter)


# ---- modal submissions ---------------------------------------------------------------------------


def team_of_view(deps: Deps, body: dict[str, Any], view: dict[str, Any]) -> Team | None:
    """The registered team a modal names in its private_metadata, if it is one of the workspace the
    submission comes from (a payload never acts on another workspace's team)."""
    name = json_object(view.get("private_metadata")).get("team")
    try:
        ref = TeamRef.parse(name) if isinstance(name, str) else None
    except InvalidInput:
        return None
    if ref is not None and ref.workspace != sender_workspace(body):
        log.warning("slack: a modal naming another workspace's team refused")
        return None
    return deps.teams.get(ref) if ref is not None else None


def view_ref(view: dict[str, Any]) -> ViewRef | None:
    """The submitted modal's ID and hash (Slack always sends both): what makes a replay recognisable."""
    try:
        return ViewRef(view.get("id"), view.get("hash"))  # type: ignore[arg-type]  # checked there
    except InvalidInput:
        return None


def report_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Validate, render the channel post, store the report with its post (one script), then close the
    modal. If the store does not answer, the modal stays open saying so (nothing was stored)."""
    try:
        answer = store_report(body, view, deps)
    except StoreUnavailable as e:
        log.error("slack: a report could not be stored (%s)", e)
        answer = {"quarter": t(deps.locale, "err_store")}
    if answer:
        ack(response_action="errors", errors=answer)
    else:
        ack()


def store_report(body: dict[str, Any], view: dict[str, Any], deps: Deps) -> dict[str, str]:
    """The modal's errors by block ID; {} once the report is stored (or was already: a replay)."""
    locale, catalog, teams = deps.locale, deps.catalog, deps.teams
    team = team_of_view(deps, body, view)
    state = obj(obj(view.get("state")).get("values"))
    user = strings(obj(body.get("user")), "id")
    submitted = view_ref(view)
    if team is None or user is None or submitted is None:
        return {"quarter": t(locale, "not_a_team")}
    now = deps.clock()
    quarter, errors = B.parse_quarter(locale, state, quarter_of(now, team.tz))
    values, value_errors = B.parse_figures(catalog, locale, state)
    errors |= value_errors
    for key in missing_required(catalog.indicators, values):
        errors.setdefault(f"ind:{key}", t(locale, "err_number"))
    if errors or quarter is None:
        return errors
    by = user[0]
    # The post is rendered before the store (it is committed with the report): from the figures, the
    # targets in force and the previous quarter, all read first. "Replaced" is read first too, so two
    # people submitting the same quarter at the same instant may both read "reported" (the audit
    # records, written by the script, are exact).
    targets = teams.targets(team.ref)
    current = teams.report(team.ref, quarter)
    prev = teams.report(team.ref, quarter.previous())
    result = score(deps, values, targets, prev.values if prev else None)
    deltas = None
    if prev is not None:
        deltas = compare(result, score_report(deps, prev, team.ref, teams.report(team.ref, quarter.previous(2))))
    replaced = current is not None and bool(current.values)
    text, blks = B.result_message(catalog, locale, team, quarter, result, deltas, by, replaced)
    outcome = teams.submit(team.ref, quarter, values, by, now, targets, view=submitted,
                           post=[{"type": "slack_post", "text": text, "blocks": blks}], lease=deps.post_lease)
    if outcome.applied:
        log.info("slack: team %s reported %s (%d figures) by %s", team.ref.channel, quarter, len(values), uid(by))
    else:
        log.info("slack: a report modal submitted again (team %s) was not applied twice", team.ref.channel)
    return {}


def targets_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Validate and store the targets, then close the modal (open, saying so, if the store does not answer)."""
    locale, catalog = deps.locale, deps.catalog
    # Slack refuses an empty errors object (and Bolt raises on one): a modal-wide problem names the first input
    first_input = f"ind:{catalog.indicators[0].key}"
    try:
        team = team_of_view(deps, body, view)
        user = strings(obj(body.get("user")), "id")
        submitted = view_ref(view)
        if team is None or user is None or submitted is None:
            ack(response_action="errors", errors={first_input: t(locale, "not_a_team")})
            return
        values, errors = B.parse_figures(catalog, locale, obj(obj(view.get("state")).get("values")), as_targets=True)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        applied = deps.teams.set_targets(team.ref, values, user[0], deps.clock(), view=submitted)
    except StoreUnavailable as e:
        log.error("slack: targets could not be stored (%s)", e)
        ack(response_action="errors", errors={first_input: t(locale, "err_store")})
        return
    ack()
    if not applied:
        log.info("slack: a targets modal submitted again (team %s) was not applied twice", team.ref.channel)
        return
    ephemeral(deps, team.ref, user[0], t(locale, "targets_saved"))


def register(app: App) -> None:
    app.command("/kpi")(kpi_command)
    app.action(B.OPEN_REPORT_ACTION)(open_report_button)
    app.view(B.REPORT_CALLBACK)(report_submitted)
    app.view(B.TARGETS_CALLBACK)(targets_submitted)
