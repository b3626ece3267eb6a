"""``/console/content``: the diagnosis content's versions (conversations/content_versions.py).

Every operator reads the page: the version in use, the versions published (label, who first published it,
when), each one's file to download. Only an admin uploads, publishes and goes back (403 for others):

    GET  /console/content                  the page; ``?draft=<id>``: that draft, with its try and publish buttons
    GET  /console/content/file/<label>     a version's TOML file ("deployed": the deployed file)
    POST /console/content/upload           a file (``file``): checked as at start-up; a problem is shown with its
                                           line and field (400) and changes nothing; else a draft (303 to it)
    POST /console/content/publish          ``draft``: published (a new label, or the one its text already has)
    POST /console/content/activate         ``label``: an earlier version published again ("" the deployed file)

A publish and a going back are in the audit log (``content.publish``, ``content.rollback``), as is an
upload (``content.upload``); the try page runs a draft for the browser that opens it (bot/console/try_chat.py).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, request, url_for

from bot.console import audit, auth
from bot.console.routes.common import page, svc
from bot.console.texts import texts
from conversations.content_versions import ContentVersions, Draft, Problem

DEPLOYED = "deployed"  # the file's label in the download's URL


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/content", "content", content, methods=["GET"])
    bp.add_url_rule("/content/file/<label>", "content_file", content_file, methods=["GET"])
    bp.add_url_rule("/content/upload", "content_upload", upload, methods=["POST"])
    bp.add_url_rule("/content/publish", "content_publish", publish, methods=["POST"])
    bp.add_url_rule("/content/activate", "content_activate", activate, methods=["POST"])


def _versions() -> ContentVersions:
    versions: ContentVersions | None = svc().versions
    if versions is None:
        abort(404)
    return versions


def _audit(action: str, label: str, detail: str) -> None:
    audit.record(svc().redis, who=auth.operator_name(), action=action, target=f"content:{label or DEPLOYED}",
                 detail=detail, now=svc().clock())


def _render(*, draft: Draft | None = None, problem: Problem | None = None, draft_gone: bool = False,
            status: int = 200) -> Any:
    versions = _versions()
    locale = versions.deployed.locale
    html = page("console_content.html", nav="content", active=versions.current(), published=versions.published(),
                deployed=versions.deployed, draft=draft, problem=problem, draft_gone=draft_gone, locale=locale,
                may_publish=auth.is_admin())
    return html, status, {"Cache-Control": "no-store"}


def content() -> Any:
    draft_id = request.args.get("draft", "")
    draft = _versions().draft(draft_id) if draft_id else None
    return _render(draft=draft, draft_gone=bool(draft_id) and draft is None)


def content_file(label: str) -> Response:
    versions = _versions()
    if label == DEPLOYED:
        script = versions.deployed
    elif label in {p.label for p in versions.published()}:
        script = versions.script_of(label)
        if script is versions.deployed:  # its text is gone, or this code refuses it: not this version's file
            abort(404)
    else:
        abort(404)
    name = f"diagnosis.{script.locale}.{label}.toml"
    return Response(script.source, mimetype="application/toml",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def upload() -> Any:
    if not auth.is_admin():
        return auth.forbidden()
    file = request.files.get("file")
    if file is None or not file.filename:
        return _render(problem=Problem("(file)", texts()["content_upload_none"]), status=400)
    got = _versions().upload(file.read(), by=auth.operator_name(), now=svc().clock())
    if isinstance(got, Problem):
        return _render(problem=got, status=400)
    _audit("content.upload", got.label, got.script.version)
    return redirect(url_for("console.content", draft=got.id), 303)


def publish() -> Any:
    if not auth.is_admin():
        return auth.forbidden()
    versions = _versions()
    draft = versions.draft(request.form.get("draft", ""))
    if draft is None:
        return _render(draft_gone=True, status=404)
    label, _new = versions.publish(draft, by=auth.operator_name(), now=svc().clock())
    _audit("content.publish", label, draft.script.version)
    flash(texts()["content_published"].format(label=label), "ok")
    return redirect(url_for("console.content"), 303)


def activate() -> Any:
    if not auth.is_admin():
        return auth.forbidden()
    label = request.form.get("label", "")
    versions = _versions()
    if not versions.activate(label, by=auth.operator_name(), now=svc().clock()):
        abort(404)
    _audit("content.rollback", label, versions.script_of(label).version)
    t = texts()
    flash(t["content_rolled_back"].format(label=label) if label else t["content_back_to_deployed"], "ok")
    return redirect(url_for("console.content"), 303)
