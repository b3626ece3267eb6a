"""The KPI feature: /kpi and its subcommands, the report and targets modals, the open-report button.

These listeners parse and render; the method is the KPI core's (:class:`bot.kpi.KpiCore`, ``deps.kpi``):
a submitted modal's values become the core's input (the quarter chosen, the figures as typed), and
the core's answer its errors or its close. With area owners (:mod:`bot.slack.listeners.method`) an
owner's form shows their areas (the others read-only); the core merges their submission into the
quarter and commits the team's result with the one that brings the last area in, once.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.kpi import Refused
from bot.mrkdwn import escape, unescape
from bot.slack import blocks, results
from bot.slack.deps import Deps
from bot.slack.listeners import method
from bot.slack.listeners.common import ephemeral, modal_submission, post_to_team, subject_of
from bot.slack.payload import json_object, obj, sender_workspace, strings
from bot.slack.texts import fy_month, t
from conversations.errors import Contention, InvalidInput, StoreUnavailable
from conversations.keys import TeamRef
from conversations.teams import Team
from scoring.periods import DEFAULT_TZ, Quarter, parse_fy_start, zone

log = logging.getLogger(__name__)


def plain_name(text: str) -> str:
    """A team name as kept: printable characters, one space between words, at most 80 characters.
    Kept as typed (``<``, ``*`` and all): every Slack renderer escapes it (:func:`bot.mrkdwn.escape`)."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())[:80].strip()


def report_view(deps: Deps, team: Team, quarter: Quarter | None = None, user: str = "") -> dict[str, Any]:
    """The report modal: the last ended quarter preselected (or ``quarter``: a reminder's button, a
    Workflow Builder step, if it is still among the choices), earlier ones offered for late entries,
    never the running one. An area owner sees inputs for their areas only, the others read-only."""
    form = deps.kpi.report_form(team, user, quarter)
    readonly = results.readonly_texts(deps.catalog, deps.locale, form.report, form.owners, form.others)
    return blocks.report_modal(deps.catalog, deps.locale, team, form.choices, form.initial,
                               form.report.values if form.report else {}, form.targets,
                               form.editable if form.others else None, readonly)


def open_report(deps: Deps, trigger_id: str, team: Team, quarter: Quarter | None = None, user: str = "") -> None:
    deps.client.views_open(trigger_id=trigger_id, view=report_view(deps, team, quarter, user))


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
    # split on any whitespace: Japanese input methods type U+3000 (full-width) for a space; Slack sends
    # the typed & < > as &amp; &lt; &gt;: unescaped, the team name is kept as typed (escaped when shown)
    text = command.get("text")
    words = unescape(text if isinstance(text, str) else "").split(None, 1)
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
        open_report(deps, trigger_id, team, user=user)
    elif sub == "targets":
        deps.client.views_open(trigger_id=trigger_id,
                               view=blocks.targets_modal(deps.catalog, locale, team, teams.targets(ref)))
    elif sub == "history":
        past = deps.kpi.history(ref)
        rows = past.rows
        text, blks = blocks.history_blocks(deps.catalog, locale, team, rows, past.actions)
        if rows:  # the chart and table go to the asker's DM: the fallback, an image, cannot be ephemeral
            trend = results.trend_post(deps.catalog, locale, team, rows)
            deps.outbox.enqueue(subject_of(ref.workspace, user), [trend])
            blks.append(blocks.section(t(locale, "history_chart_sent")))
        ephemeral(deps, ref, user, text, blks)
    elif sub == "owners":
        method.open_owners(deps, trigger_id, team)
    elif sub == "detail":
        try:
            quarter = Quarter.parse(rest) if rest.strip() else None
        except ValueError:
            quarter = None
        method.detail(deps, team, user, quarter)
    elif sub == "export":
        method.export(deps, team, user)
    elif sub == "reminders" and rest.strip().lower() in ("on", "off"):
        on = rest.strip().lower() == "on"
        teams.set_reminders(ref, on)
        ephemeral(deps, ref, user, t(locale, "reminders_on" if on else "reminders_off"))
    else:
        ephemeral(deps, ref, user, t(locale, "help"))


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
        ephemeral(deps, ref, user, t(locale, "bad_tz", tz=escape(tz[:40])))
        return
    name = plain_name(" ".join(words))
    if not name:
        existing = deps.teams.get(ref)
        # else the channel's name as the slash command carried it (no API call from the web tier)
        name = existing.name if existing else plain_name(channel_name) or ref.channel
    team, created = deps.teams.register(ref, name, tz, user, deps.clock(), fy)
    settings = {"name": escape(team.name), "tz": team.tz, "fy": fy_month(locale, team.fy_start)}
    if created:
        # the announcement is queued first: a failed (best-effort) ephemeral must not lose it
        announcement = t(locale, "setup_announce", user=user, name=escape(team.name))
        post_to_team(deps, team, announcement, [blocks.section(announcement)])
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
    user = obj(body.get("user")).get("id")
    if team is not None and isinstance(trigger_id, str) and trigger_id:
        open_report(deps, trigger_id, team, quarter, user if isinstance(user, str) else "")


# ---- modal submissions ---------------------------------------------------------------------------


def report_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Parse the modal; the KPI core checks the report and stores it with its post (one script); then
    close the modal, or keep it open with the core's problems. If the store does not answer, the modal
    stays open saying so (nothing was stored)."""
    try:
        answer = store_report(body, view, deps)
    except (StoreUnavailable, Contention) as e:
        log.error("slack: a report could not be stored (%s)", e)
        answer = {"quarter": t(deps.locale, "err_store")}
    if answer:
        ack(response_action="errors", errors=answer)
    else:
        ack()


def store_report(body: dict[str, Any], view: dict[str, Any], deps: Deps) -> dict[str, str]:
    """The modal's errors by block ID; {} once the report is stored (or was already: a replay)."""
    state = obj(obj(view.get("state")).get("values"))
    found = modal_submission(deps, body, view)
    if found is None:
        return {"quarter": t(deps.locale, "not_a_team")}
    team, by, submitted = found
    refused = deps.kpi.submit_report(team, by, blocks.chosen_quarter(state), blocks.typed_figures(deps.catalog, state),
                                     submitted)
    return blocks.modal_errors(deps.catalog, deps.locale, refused) if refused is not None else {}


def targets_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], deps: Deps) -> None:
    """Validate and store the targets, then close the modal (open, saying so, if the store does not answer)."""
    locale, catalog = deps.locale, deps.catalog
    # Slack refuses an empty errors object (and Bolt raises on one): a modal-wide problem names the first input
    first_input = f"ind:{catalog.indicators[0].key}"
    try:
        found = modal_submission(deps, body, view)
        if found is None:
            ack(response_action="errors", errors={first_input: t(locale, "not_a_team")})
            return
        team, by, submitted = found
        typed = blocks.typed_figures(catalog, obj(obj(view.get("state")).get("values")))
        applied = deps.kpi.set_targets(team, by, typed, submitted)
    except StoreUnavailable as e:
        log.error("slack: targets could not be stored (%s)", e)
        ack(response_action="errors", errors={first_input: t(locale, "err_store")})
        return
    if isinstance(applied, Refused):
        ack(response_action="errors", errors=blocks.modal_errors(catalog, locale, applied))
        return
    ack()
    if applied:
        ephemeral(deps, team.ref, by, t(locale, "targets_saved"))


def register(app: App) -> None:
    app.command("/kpi")(kpi_command)
    app.action(blocks.OPEN_REPORT_ACTION)(open_report_button)
    app.view(blocks.REPORT_CALLBACK)(report_submitted)
    app.view(blocks.TARGETS_CALLBACK)(targets_submitted)
    method.register(app)
