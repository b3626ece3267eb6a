"""Operators' own accounts (bot/console/operators.py, auth.py, routes/operators.py and profile.py) and the audit
log (bot/console/audit.py): the first admin from the shared login, roles, TOTP, sessions listed and revoked,
the audit page and CSV, ``crmbot console add-operator``. Real Redis; the clock is injected."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pyotp
import pytest
import redis
from argon2 import PasswordHasher

from bot.console import audit, auth, keys, operators
from bot.console.operators import OperatorError, OperatorStore
from conversations.analytics import Analytics
from conversations.errors import CrmbotError
from tests.bot.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    PASSWORD,
    TOKEN,
    Console,
    LineConsole,
    csrf_of,
)
from tests.conftest import FakeClock

BIN = Path(sys.executable).parent


def take(lc: LineConsole, answers: str) -> None:
    """A LINE user takes the diagnosis (started by its keyword, answers typed), through signed webhooks."""
    user = lc.user()
    user.say("診断")
    lc.settle()
    for letter in answers:
        lc.clock.advance(5)
        user.say(letter)
        lc.settle()


def post(c: Console, path: str, data: dict[str, str], page: str = "/console/profile", http: object = None) -> object:
    client = http or c.http
    token = csrf_of(client.get(page).get_data(as_text=True))  # type: ignore[attr-defined]
    return client.post(path, data={**data, "csrf_token": token})  # type: ignore[attr-defined]


def audit_rows(c: Console, query: str = "") -> list[tuple[str, str, str]]:
    html = c.http.get(f"/console/audit{query}").get_data(as_text=True)
    rows = re.findall(r'<tr class="audit-row" data-action="([^"]+)">\s*<td>[^<]*</td><td class="who">([^<]*)</td>'
                      r'\s*<td>[^<]*</td><td><code>[^<]*</code></td><td>([^<]*)</td>', html)
    return [(action, who, detail) for action, who, detail in rows]


# ---- the first admin -------------------------------------------------------------------------------------


def test_the_shared_login_makes_the_first_admin_and_then_closes(console: Console) -> None:
    assert console.login().status_code == 302  # the shared password, while no operator exists
    res = post(console, "/console/operators/new", {"name": "Aiko", "email": ADMIN_EMAIL, "role": "viewer",
                                                    "password": ADMIN_PASSWORD}, page="/console/operators")
    assert res.status_code == 302 and res.headers["Location"] == "/console/profile"  # type: ignore[attr-defined]
    [op] = OperatorStore(console.r, console.clock).all()
    assert (op.name, op.role) == ("Aiko", "admin")  # the first is an admin, whatever was asked
    assert console.http.get("/console/operators").status_code == 200  # carried on as that admin
    # the shared password and the links are closed now; a shared session elsewhere ends
    other = console.client()
    assert console.login(other).status_code == 401
    token = auth.issue_login_token(console.r)
    assert other.get(f"/console/login?token={token}").status_code == 401
    assert other.get("/console/teams").status_code == 302
    assert [(a, w) for a, w, _ in audit_rows(console)][:2] == [("login", "Aiko"), ("operator.create", "console")]


def test_a_second_first_admin_is_refused(console: Console) -> None:
    a, b = console.client(), console.client()
    console.login(a)
    console.login(b)
    post(console, "/console/operators/new", {"name": "A", "email": "a@example.jp", "password": ADMIN_PASSWORD},
         page="/console/operators", http=a)
    assert b.get("/console/operators").status_code == 302  # b's shared session ended
    assert len(OperatorStore(console.r, console.clock).all()) == 1


# ---- logins, roles and the audit log --------------------------------------------------------------------


def test_two_operators_log_in_as_themselves_and_the_audit_names_who_changed_a_status(
    line_console: LineConsole,
) -> None:
    lc = line_console
    take(lc, "AAAAAAAAAA")
    [lead] = Analytics(lc.r, clock=lc.clock).leads()
    lc.add_operator(ADMIN_EMAIL, "Admin", "admin")
    lc.add_operator("sato@example.jp", "佐藤", "operator", "sato password 1")
    lc.add_operator("kato@example.jp", "加藤", "operator", "kato password 1")
    sato, kato = lc.client(), lc.client()
    assert lc.login_as("sato@example.jp", "sato password 1", http=sato).status_code == 302
    assert lc.login_as("kato@example.jp", "kato password 1", http=kato).status_code == 302
    assert lc.login_as("kato@example.jp", "sato password 1").status_code == 401  # another's password
    assert 'id="nav-profile"' in kato.get("/console/").get_data(as_text=True)
    url = f"/console/leads/{lc.ref(lead.id)}"
    res = post(lc, f"{url}/consult", {"status": "contacted"}, page=url, http=sato)
    assert res.status_code == 302  # type: ignore[attr-defined]
    found = Analytics(lc.r, clock=lc.clock).lead(lead.id)
    assert found is not None and found.consult_by == "佐藤"
    lc.login_as(ADMIN_EMAIL)
    rows = audit_rows(lc)
    assert ("lead.status", "佐藤", "contacted") in rows
    assert ("login", "加藤", "") in rows and ("login", "佐藤", "") in rows
    assert audit_rows(lc, "?who=加藤") == [("login", "加藤", "")]
    assert [r[0] for r in audit_rows(lc, "?action=lead.status")] == ["lead.status"]
    # the lead's own page lists its entries, by the lead's hash (never the LINE user ID)
    page = lc.http.get(url).get_data(as_text=True)
    assert re.search(r'id="lead-audit".*佐藤.*contacted', page, re.S)
    [entry] = audit.for_target(lc.r, audit.lead_target(lead.id), 10)
    assert entry.who == "佐藤" and lead.user_id not in entry.target
    assert not any(lead.user_id.encode() in v for _, f in lc.r.xrange(keys.AUDIT) for v in f.values())


def test_each_operators_note_assignment_and_status_change_carry_their_name(line_console: LineConsole) -> None:
    """The lead's notes and history, and the audit page, name the operator who made each change."""
    lc = line_console
    take(lc, "AAAAAAAAAA")
    [lead] = Analytics(lc.r, clock=lc.clock).leads()
    lc.add_operator(ADMIN_EMAIL, "Admin", "admin")
    lc.add_operator("sato@example.jp", "佐藤", "operator", "sato password 1")
    lc.add_operator("kato@example.jp", "加藤", "operator", "kato password 1")
    sato, kato = lc.client(), lc.client()
    assert lc.login_as("sato@example.jp", "sato password 1", http=sato).status_code == 302
    assert lc.login_as("kato@example.jp", "kato password 1", http=kato).status_code == 302
    url = f"/console/leads/{lc.ref(lead.id)}"
    form = re.search(r'name="form" value="([^"]+)"', sato.get(url).get_data(as_text=True))
    assert form
    assert post(lc, f"{url}/note", {"note": "月曜に電話", "form": form.group(1)}, page=url,
                http=sato).status_code == 302  # type: ignore[attr-defined]
    lc.clock.advance(60)
    assert post(lc, f"{url}/assign", {"assignee": "佐藤"}, page=url,
                http=kato).status_code == 302  # type: ignore[attr-defined]
    lc.clock.advance(60)
    assert post(lc, f"{url}/consult", {"status": "contacted"}, page=url,
                http=sato).status_code == 302  # type: ignore[attr-defined]
    page = kato.get(url).get_data(as_text=True)
    notes = re.findall(r'class="note-by">([^<]*)<.*?class="note-text">([^<]*)<', page, re.S)
    assert notes == [("佐藤", "月曜に電話")]
    history = re.findall(r'<tr class="history-row" data-field="(\w+)"><td>[^<]+</td><td class="history-by">([^<]*)<',
                         page)
    assert history == [("status", "佐藤"), ("assignee", "加藤")]  # newest first
    assert lc.login_as(ADMIN_EMAIL).status_code == 302
    rows = [r for r in audit_rows(lc) if r[0].startswith("lead.")]
    assert rows == [("lead.status", "佐藤", "contacted"), ("lead.assign", "加藤", "佐藤"), ("lead.note", "佐藤", "")]


def test_a_viewer_changes_nothing(line_console: LineConsole) -> None:
    lc = line_console
    take(lc, "AAAAAAAAAA")
    [lead] = Analytics(lc.r, clock=lc.clock).leads()
    lc.add_operator(ADMIN_EMAIL, "Admin", "admin")
    lc.add_operator("view@example.jp", "Viewer", "viewer")
    assert lc.login_as("view@example.jp").status_code == 302
    url = f"/console/leads/{lc.ref(lead.id)}"
    assert lc.http.get(url).status_code == 200  # reads every page
    before = len(lc.r.xrange(keys.AUDIT))
    for path, data in [(f"{url}/consult", {"status": "contacted"}), (f"{url}/erase", {"confirm": "yes"}),
                       (f"{url}/assign", {"assignee": "Viewer"}), (f"{url}/note", {"note": "x", "form": "f"}),
                       ("/console/delivery/requeue", {"job": "x"}),
                       ("/console/operators/new", {"name": "X", "email": "x@example.jp", "role": "admin",
                                                   "password": ADMIN_PASSWORD}),
                       ("/console/operators/totp", {"required": "yes"})]:
        res = post(lc, path, data, page="/console/leads")
        assert res.status_code == 403, path  # type: ignore[attr-defined]
    found = Analytics(lc.r, clock=lc.clock).lead(lead.id)
    assert found is not None and found.consult == ""
    assert len(OperatorStore(lc.r, lc.clock).all()) == 2 and not OperatorStore(lc.r, lc.clock).totp_required()
    assert len(lc.r.xrange(keys.AUDIT)) == before
    assert lc.http.get("/console/operators").status_code == 403  # only an admin manages operators
    # a write through the API with the viewer's session is refused too; the token acts as "api"
    res = lc.http.post("/console/api/calendar/rotate", headers={"X-CSRFToken": csrf_of(
        lc.http.get("/console/leads").get_data(as_text=True))})
    assert res.status_code == 403
    # logging out is no change
    assert post(lc, "/console/logout", {}, page="/console/leads").status_code == 302  # type: ignore[attr-defined]


def test_only_an_admin_manages_operators_and_one_admin_always_stays(admin: Console) -> None:
    c = admin
    op = c.add_operator("op@example.jp", "Op", "operator")
    me = OperatorStore(c.r, c.clock).by_email(ADMIN_EMAIL)
    assert me is not None
    res = post(c, f"/console/operators/{me.id}", {"role": "viewer"}, page="/console/operators")
    assert "管理者が一人もいなくなる" in c.http.get("/console/operators").get_data(as_text=True)
    assert OperatorStore(c.r, c.clock).get(me.id).role == "admin"  # type: ignore[union-attr]
    res = post(c, f"/console/operators/{op.id}", {"role": "admin"}, page="/console/operators")
    assert res.status_code == 302  # type: ignore[attr-defined]
    assert OperatorStore(c.r, c.clock).get(op.id).role == "admin"  # type: ignore[union-attr]
    with pytest.raises(OperatorError, match="taken"):
        c.add_operator("OP@example.jp", "Twin")  # e-mails compare without case
    other = c.client()
    assert c.login_as("op@example.jp", http=other).status_code == 302
    res = post(c, f"/console/operators/{op.id}/delete", {"confirm": "yes"}, page="/console/operators")
    assert res.status_code == 302  # type: ignore[attr-defined]
    assert other.get("/console/leads").status_code == 302  # a removed operator's sessions end with them
    assert [a for a, _, _ in audit_rows(c)][:3] == ["operator.delete", "login", "operator.role"]


# ---- TOTP ------------------------------------------------------------------------------------------------


def test_totp_enrolment_and_a_required_code(admin: Console) -> None:
    c = admin
    html = c.http.get("/console/profile").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', html).group(1)  # type: ignore[union-attr]
    assert 'src="data:image/svg+xml' in html  # the QR code, inline (the CSP allows data: images)
    totp = pyotp.TOTP(secret)
    post(c, "/console/profile/totp", {"code": "000000" if totp.at(c.clock()) != "000000" else "111111"})
    assert not OperatorStore(c.r, c.clock).by_email(ADMIN_EMAIL).has_totp  # type: ignore[union-attr]
    post(c, "/console/profile/totp", {"code": totp.at(c.clock())})
    assert OperatorStore(c.r, c.clock).by_email(ADMIN_EMAIL).has_totp  # type: ignore[union-attr]
    post(c, "/console/operators/totp", {"required": "yes"}, page="/console/operators")
    assert OperatorStore(c.r, c.clock).totp_required()
    c.clock.advance(60)
    # without the code, or with a wrong one: refused
    assert c.login_as(ADMIN_EMAIL, http=c.client()).status_code == 401
    assert c.login_as(ADMIN_EMAIL, code="123456" if totp.at(c.clock()) != "123456" else "654321",
                      http=c.client()).status_code == 401
    # with the code: in; the same code again: refused (used up)
    code = totp.at(c.clock())
    assert c.login_as(ADMIN_EMAIL, code=code, http=c.client()).status_code == 302
    assert c.login_as(ADMIN_EMAIL, code=code, http=c.client()).status_code == 401
    c.clock.advance(30)
    assert c.login_as(ADMIN_EMAIL, code=totp.at(c.clock()), http=c.client()).status_code == 302


def test_an_operator_without_totp_must_enrol_once_it_is_required(admin: Console) -> None:
    c = admin
    c.add_operator("new@example.jp", "New")
    OperatorStore(c.r, c.clock).require_totp(True)
    other = c.client()
    assert c.login_as("new@example.jp", http=other).status_code == 302
    res = other.get("/console/leads")
    assert res.status_code == 302 and res.headers["Location"] == "/console/profile"
    assert "2段階認証を必須にしています" in other.get("/console/profile").get_data(as_text=True)
    assert other.get("/console/export/leads.csv").status_code == 401


# ---- sessions --------------------------------------------------------------------------------------------


def test_sessions_are_listed_and_a_revoked_one_is_logged_out_at_its_next_request(admin: Console) -> None:
    c = admin
    phone = c.client()
    phone.environ_base["REMOTE_ADDR"] = "192.0.2.44"
    c.clock.advance(120)
    assert c.login_as(ADMIN_EMAIL, http=phone).status_code == 302
    html = c.http.get("/console/profile").get_data(as_text=True)
    assert "192.0.2.44" in html and "この端末" in html
    me = OperatorStore(c.r, c.clock).by_email(ADMIN_EMAIL)
    assert me is not None
    listed = auth.access_of(c.app).sessions.of_operator(me.id)
    assert [s.addr for s in listed] == ["192.0.2.44", "127.0.0.1"]  # newest first
    assert phone.get("/console/leads").status_code == 200
    res = post(c, "/console/profile/sessions/revoke", {"session": listed[0].digest})
    assert res.status_code == 302  # type: ignore[attr-defined]
    res = phone.get("/console/leads")
    assert res.status_code == 302 and res.headers["Location"].startswith("/console/login")
    assert c.http.get("/console/leads").status_code == 200  # this one goes on
    # an admin revokes anyone's; nobody revokes a session that is not the operator's
    other = c.add_operator("op@example.jp", "Op")
    op_http = c.client()
    c.login_as("op@example.jp", http=op_http)
    [theirs] = auth.access_of(c.app).sessions.of_operator(other.id)
    post(c, "/console/profile/sessions/revoke", {"session": theirs.digest}, http=op_http)
    assert op_http.get("/console/leads").status_code == 302  # they revoked their own...
    c.login_as("op@example.jp", http=op_http)
    [theirs] = auth.access_of(c.app).sessions.of_operator(other.id)
    post(c, f"/console/operators/{me.id}/revoke", {"session": theirs.digest}, page="/console/operators")
    assert op_http.get("/console/leads").status_code == 200  # ...a digest under the wrong operator does nothing
    post(c, f"/console/operators/{other.id}/revoke", {"session": theirs.digest}, page="/console/operators")
    assert op_http.get("/console/leads").status_code == 302


def test_changing_ones_password_ends_the_other_sessions(admin: Console) -> None:
    c = admin
    other = c.client()
    c.login_as(ADMIN_EMAIL, http=other)
    new = "a new password"
    post(c, "/console/profile/password", {"current": ADMIN_PASSWORD, "new": new, "again": new})
    assert other.get("/console/leads").status_code == 302
    assert c.http.get("/console/leads").status_code == 200
    assert c.login_as(ADMIN_EMAIL, http=c.client()).status_code == 401
    assert c.login_as(ADMIN_EMAIL, "a new password", http=c.client()).status_code == 302


# ---- the audit log ---------------------------------------------------------------------------------------


def test_the_audit_page_pages_newest_first_and_the_csv_exports_it(admin: Console) -> None:
    c = admin
    for i in range(120):
        audit.record(c.r, who="佐藤" if i % 2 else "=cmd", action="lead.status", target=f"lead:{i}",
                     detail=f"n{i}", now=c.clock() + i)
    html = c.http.get("/console/audit?action=lead.status").get_data(as_text=True)
    assert html.count('class="audit-row"') == 50
    assert html.index("n119") < html.index("n118")  # newest first
    older = re.search(r'href="([^"]+)" id="audit-older"', html).group(1).replace("&amp;", "&")  # type: ignore
    html = c.http.get(older).get_data(as_text=True)
    assert "n69" in html and "n70" not in html and 'id="audit-newest"' in html
    assert [w for _, w, _ in audit_rows(c, "?who=佐藤&action=lead.status")] == ["佐藤"] * 50
    res = c.http.get("/console/export/audit.csv?who==cmd")
    rows = list(csv.reader(io.StringIO(res.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][1] == "操作した人" and len(rows) == 61 and rows[1][1] == "'=cmd"  # no formula
    res = c.http.get("/console/export/audit.csv", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 200 and len(res.get_data(as_text=True).splitlines()) >= 121


def test_the_stream_is_bounded_and_the_target_index_too(r: redis.Redis, clock: FakeClock,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "MAXLEN", 10)
    monkeypatch.setattr(audit, "PER_TARGET", 3)
    for i in range(400):
        audit.record(r, who="a", action="x", target="t", detail=str(i), now=clock())
    assert r.xlen(keys.AUDIT) < 400  # trimmed (MAXLEN ~: whole blocks, so not exactly 10)
    assert r.llen(keys.audit_target("t")) == 3
    assert [e.detail for e in audit.for_target(r, "t", 10)] == ["399", "398", "397"]


# ---- passwords and the CLI -------------------------------------------------------------------------------


def test_passwords_are_argon2id_with_rfc_9106_parameters() -> None:
    hasher = PasswordHasher()
    assert isinstance(operators.HASHER, PasswordHasher)
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (3, 65536, 4)
    assert operators.HASHER.hash("a password 123").startswith("$argon2id$")


def test_the_operator_record_holds_no_password(console: Console) -> None:
    console.add_operator("op@example.jp", "Op")
    assert not any(ADMIN_PASSWORD.encode() in v for v in console.r.hvals(keys.OPERATORS))
    assert not any(b"op@example.jp" in k for k in console.r.keys("*"))  # the index holds a digest


def test_cli_add_operator_reads_the_password_from_stdin(r: redis.Redis, redis_url: str, console: Console) -> None:
    env = os.environ | {"REDIS_URL": redis_url}
    done = subprocess.run([str(BIN / "crmbot"), "console", "add-operator", "cli@example.jp", "--name", "CLI 太郎",
                           "--role", "admin"], input=b"cli password 1\n", env=env, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert b"cli password" not in done.stdout + done.stderr
    op = OperatorStore(r, console.clock).by_email("cli@example.jp")
    assert op is not None and (op.name, op.role) == ("CLI 太郎", "admin")
    assert console.login_as("cli@example.jp", "cli password 1").status_code == 302
    assert console.login_as("cli@example.jp", "cli password 2", http=console.client()).status_code == 401
    again = subprocess.run([str(BIN / "crmbot"), "console", "add-operator", "cli@example.jp", "--name", "X"],
                           input=b"cli password 1\n", env=env, capture_output=True, timeout=120)
    assert again.returncode == 1 and b"taken" in again.stderr
    short = subprocess.run([str(BIN / "crmbot"), "console", "login-link"], env=env, capture_output=True, timeout=120)
    assert short.returncode == 1 and b"operators exist" in short.stderr  # the link is closed now


def test_shared_password_still_works_before_any_operator(console: Console) -> None:
    res = console.login(password=PASSWORD)
    assert res.status_code == 302
    assert console.http.get("/console/teams").status_code == 200


def test_serve_prints_a_link_only_while_no_operator_exists(console: Console) -> None:
    from bot.cli import console_link

    first = console_link(console.r, ("0.0.0.0", 8123))
    assert re.match(r"Console: http://127\.0\.0\.1:8123/console/login\?token=[\w-]+\n", first)
    assert "first admin" in first
    console.add_operator(ADMIN_EMAIL, "Admin", "admin")
    links = len(console.r.keys("crmbot:{console}:once:*"))
    assert console_link(console.r, ("0.0.0.0", 8123)) == "Console: http://127.0.0.1:8123/console/login"
    assert len(console.r.keys("crmbot:{console}:once:*")) == links  # no token made that would open nothing


def test_the_add_operator_command_in_process(r: redis.Redis, redis_url: str, console: Console,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import add_operator_cmd
    from bot.config import Config

    config = Config(redis_url=redis_url)
    assert add_operator_cmd(config, "v@example.jp", "閲覧 さん", "viewer", io.StringIO("viewer password\n")) == 0
    assert "viewer password" not in capsys.readouterr().out
    op = OperatorStore(r, console.clock).by_email("v@example.jp")
    assert op is not None and op.role == "viewer"
    [entry] = audit.page(r).entries
    assert (entry.who, entry.action, entry.detail) == ("cli", "operator.create", "閲覧 さん (viewer)")
    with pytest.raises(CrmbotError, match="short password"):
        add_operator_cmd(config, "w@example.jp", "W", "viewer", io.StringIO("short\n"))


def test_every_word_the_new_pages_use_exists() -> None:
    """Jinja renders a missing ``t.key`` as nothing: every key these templates name is in the texts, and so
    is every role's and every known action's word."""
    from bot.console.texts import JA

    folder = Path(__file__).resolve().parents[3] / "bot" / "console" / "templates"
    for name in ("console_login.html", "console_operators.html", "console_profile.html", "console_audit.html",
                 "console_base.html"):
        used = set(re.findall(r"\bt\.(\w+)", (folder / name).read_text(encoding="utf-8")))
        assert used <= set(JA), (name, used - set(JA))
    assert {f"role_{r}" for r in operators.ROLES} <= set(JA)
    assert {"act_" + a.replace(".", "_") for a in audit.ACTIONS} <= set(JA)
    assert {f"operator_error_{r}" for r in ("taken", "last_admin", "gone", "not_first", "bad_email", "bad_name",
                                            "bad_role", "short_password")} <= set(JA)


def test_english_pages_render(admin: Console) -> None:
    admin.svc.config = admin.svc.config.with_(locale="en")  # type: ignore[misc]
    for path, word in (("/console/operators", "Add an operator"), ("/console/profile", "Two-step login"),
                       ("/console/audit", "Audit log")):
        res = admin.http.get(path)
        assert res.status_code == 200 and word in res.get_data(as_text=True), path
