"""``/console/experiments``: the content experiments (conversations/experiments.py): per experiment and variant,
the diagnoses started, finished, with a consultation requested and booked, their rates, and each variant against
the first (the control) on finished -> consultation requested: a two-proportion z-test (statsmodels) with its
p-value in plain words, and the finished diagnoses each variant still needs to detect a chosen effect.

"End the experiment" (an admin or operator; a viewer only reads: 403) picks the variant every new diagnosis is
shown from then on (kept in Redis, read by every process when a diagnosis starts: no deploy), keeps a snapshot
of the counts and writes the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from conversations import experiments
from conversations.content import Experiment

EFFECTS = (2, 5, 10)  # percentage points the operator may choose to detect
DEFAULT_EFFECT = 5
TEXT_SHOWN = 60  # characters of a variant's text shown


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/experiments", "experiments", experiments_page, methods=["GET"])
    bp.add_url_rule("/experiments/<name>/end", "end_experiment", end_experiment, methods=["POST"])


@dataclass(frozen=True)
class Row:
    name: str
    text: str
    counts: experiments.Counts
    winner: bool
    verdict: str  # the comparison with the control, in plain words ("" for the control)
    needed: str  # the sample still needed, in plain words


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "－"


def _verdict(variant: str, control: str, p: float | None) -> str:
    t = texts()
    if p is None:
        return t["exp_p_none"]
    key = "exp_p_significant" if p < experiments.ALPHA else "exp_p_chance"
    return t[key].format(variant=variant, control=control, p=f"{p:.3f}")


def _needed(n: int | None, effect: int) -> str:
    t = texts()
    if n is None:
        return ""
    return t["exp_needed_none"].format(effect=effect) if n == 0 else t["exp_needed"].format(n=n, effect=effect)


def _rows(exp: Experiment, state: experiments.State, effect: int) -> list[Row]:
    control = exp.variants[0].name
    rows = []
    for v in exp.variants:
        counts = state.counts[v.name]
        verdict = needed = ""
        if v.name != control:
            p, n = experiments.compare(state.counts[control], counts, effect / 100)
            verdict, needed = _verdict(v.name, control, p), _needed(n, effect)
        shown = v.text if len(v.text) <= TEXT_SHOWN else v.text[:TEXT_SHOWN] + "…"
        rows.append(Row(v.name, shown, counts, v.name == state.winner, verdict, needed))
    return rows


def experiments_page() -> Any:
    try:
        effect = int(request.args.get("effect", DEFAULT_EFFECT))
    except ValueError:
        effect = DEFAULT_EFFECT
    effect = effect if effect in EFFECTS else DEFAULT_EFFECT
    listed = []
    for exp in svc().script.experiments:
        state = experiments.read(svc().redis, exp)
        listed.append((exp, state, _rows(exp, state, effect)))
    return page("console_experiments.html", nav="experiments", listed=listed, effect=effect, effects=EFFECTS,
                pct=_pct, may_change=auth.may_change())


def end_experiment(name: str) -> Any:
    if not auth.may_change():
        abort(403)
    exp = svc().script.experiment(name)
    winner = request.form.get("winner", "")
    if exp is None or exp.variant(winner) is None:
        abort(404)
    won = experiments.end(svc().redis, exp, winner, now=svc().clock(), by=auth.operator_name())
    if won == winner:
        audit.record(svc().redis, who=auth.operator_name(), action="experiment.end", target=f"experiment:{name}",
                     detail=winner, now=svc().clock())
    flash(texts()["exp_ended" if won == winner else "exp_already_ended"].format(name=name, variant=won), "ok")
    return redirect(url_for("console.experiments"))
