"""The console's content page (bot/console/routes/content.py) end to end, on the suite's Redis with the fake LINE
API and the worker as ``crmbot worker`` builds it: a bad upload shows its line and field and changes nothing; a
good one is a draft the try page runs for that browser only; publishing makes new diagnoses speak it (through
signed LINE webhooks) while one under way keeps its own; going back restores the earlier text; only an admin
changes anything; each change is in the audit log."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.console import audit
from conversations import keys
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.transports import Transport
from tests.bot.console.conftest import ADMIN_EMAIL, LineConsole, csrf_of, make_line_console
from tests.bot.line.helpers import LineUser
from tests.bot.test_webchat import TryPage
from tests.conftest import FakeClock
from tests.conversations.test_content_versions import JA, OLD_Q1, edited, line_of
from tests.fakes.line_api import FakeLineApi


@pytest.fixture
def lc(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path,
       console_fake_line: FakeLineApi) -> Iterator[LineConsole]:
    with make_line_console(r, redis_url, clock, tmp_path, console_fake_line) as env:
        assert env.login().status_code == 302  # the shared password: an admin's rights
        yield env


def upload(lc: LineConsole, text: str, http: Any = None) -> Any:
    http = http or lc.http
    token = csrf_of(http.get("/console/content").get_data(as_text=True))
    return http.post("/console/content/upload", data={"csrf_token": token,
                                                      "file": (io.BytesIO(text.encode()), "diagnosis.ja.toml")},
                     content_type="multipart/form-data")


def draft_of(res: Any) -> str:
    assert res.status_code == 303, res.get_data(as_text=True)
    found = re.search(r"draft=([0-9a-f]+)", res.headers["Location"])
    assert found
    return found.group(1)


def publish(lc: LineConsole, text: str) -> None:
    draft = draft_of(upload(lc, text))
    token = csrf_of(lc.http.get(f"/console/content?draft={draft}").get_data(as_text=True))
    res = lc.http.post("/console/content/publish", data={"csrf_token": token, "draft": draft})
    assert res.status_code == 303, res.get_data(as_text=True)


def go_back(lc: LineConsole, label: str) -> None:
    token = csrf_of(lc.http.get("/console/content").get_data(as_text=True))
    res = lc.http.post("/console/content/activate", data={"csrf_token": token, "label": label})
    assert res.status_code == 303, res.get_data(as_text=True)


def content_keys(r: redis.Redis) -> set[bytes]:
    return set(r.keys("crmbot:{content}:*"))


def q1(lc: LineConsole, user: LineUser) -> str:
    """The first question the user was last sent, after the worker delivered it."""
    lc.settle()
    sent = [m.get("text", "") for m in lc.fake.delivered(user.user_id)]
    return next(t for t in reversed(sent) if t.startswith("Q1/10"))


def conv_of(lc: LineConsole, user: LineUser) -> Conv:
    return Conv.from_json(lc.r.get(keys.conv(Subject(Transport.LINE, user.user_id))))


@pytest.mark.parametrize(("bad", "field", "needle"), [
    (JA.replace('offer = "', "offer = ", 1), "(file)", "offer = "),  # a TOML syntax error
    (JA.replace('start_button = "診断をはじめる"', 'start_button = ""', 1), "texts.start_button", 'start_button = ""'),
])
def test_a_bad_upload_shows_its_line_and_field_and_changes_nothing(lc: LineConsole, bad: str, field: str,
                                                                   needle: str) -> None:
    before = content_keys(lc.r)
    res = upload(lc, bad)
    assert res.status_code == 400
    html = res.get_data(as_text=True)
    assert f'data-line="{line_of(bad, needle)}"' in html
    assert f'<code id="problem-field">{field}</code>' in html
    assert content_keys(lc.r) == before  # no draft, no text, nothing in use changed
    assert lc.svc.versions is not None and lc.svc.versions.current().label == ""
    assert not list(audit.every(lc.r, action="content."))
    user = lc.user()
    user.tap("s")
    assert q1(lc, user).count(OLD_Q1) == 1 and "（" not in q1(lc, user).split(OLD_Q1)[0]


def test_a_draft_runs_in_the_try_page_of_that_browser_only(lc: LineConsole) -> None:
    draft = draft_of(upload(lc, edited("下書き")))
    page = lc.http.get(f"/console/content?draft={draft}").get_data(as_text=True)
    assert f'href="/console/try/?draft={draft}"' in page
    trying = TryPage(lc.http, lc.svc, lc.worker, lc.clock, lc.r)
    html = trying.open(f"/console/try/?draft={draft}")
    assert 'id="draft-badge"' in html
    trying.settle()
    trying.fetch()
    trying.tap("診断をはじめる")
    assert "（下書き）" + OLD_Q1 in trying.seen[-1]["text"]
    # another browser's try page, and LINE, still speak the version in use
    other_browser = lc.client()
    assert lc.login(other_browser).status_code == 302
    other = TryPage(other_browser, lc.svc, lc.worker, lc.clock, lc.r)
    assert 'id="draft-badge"' not in other.open()
    other.settle()
    other.fetch()
    other.tap("診断をはじめる")
    assert OLD_Q1 in other.seen[-1]["text"] and "（下書き）" not in other.seen[-1]["text"]
    user = lc.user()
    user.tap("s")
    assert "（下書き）" not in q1(lc, user)
    assert lc.svc.versions is not None and lc.svc.versions.current().label == ""  # nothing published
    trying.open("/console/try/?draft=")  # leaving the preview: a clean chat in the version in use
    trying.seen.clear()
    trying.settle()
    trying.fetch()
    trying.tap("診断をはじめる")
    assert "（下書き）" not in trying.seen[-1]["text"]


def test_publish_speaks_to_new_diagnoses_and_rollback_restores_the_earlier_text(lc: LineConsole) -> None:
    under_way = lc.user()
    under_way.tap("s")
    first = q1(lc, under_way)
    assert "（1）" not in first

    publish(lc, edited("1"))
    new = lc.user()
    new.tap("s")
    assert "（1）" + OLD_Q1 in q1(lc, new)
    assert conv_of(lc, new).ver == "v1"
    # the diagnosis under way keeps its version to the end: back at Q1 it reads as it did
    under_way.tap("a:1:0:A")
    lc.clock.advance(20)
    under_way.tap("b:1:1")
    assert q1(lc, under_way) == first and conv_of(lc, under_way).ver == ""

    publish(lc, edited("2"))
    later = lc.user()
    later.tap("s")
    assert "（2）" + OLD_Q1 in q1(lc, later)

    go_back(lc, "v1")  # one click: v1 again
    back = lc.user()
    back.tap("s")
    assert "（1）" + OLD_Q1 in q1(lc, back) and conv_of(lc, back).ver == "v1"
    go_back(lc, "")  # the deployed file
    plain = lc.user()
    plain.tap("s")
    assert q1(lc, plain) == first

    entries = list(audit.every(lc.r, action="content."))
    assert [(e.action, e.target) for e in entries if e.action != "content.upload"] == [
        ("content.rollback", "content:deployed"), ("content.rollback", "content:v1"),
        ("content.publish", "content:v2"), ("content.publish", "content:v1")]
    page = lc.http.get("/console/content").get_data(as_text=True)
    assert 'data-label="v2"' in page and 'data-label="v1"' in page and 'id="active-label" data-label=""' in page
    file = lc.http.get("/console/content/file/v2")
    assert file.status_code == 200 and "（2）" + OLD_Q1 in file.get_data(as_text=True)


def test_only_an_admin_changes_content(lc: LineConsole) -> None:
    draft = draft_of(upload(lc, edited("1")))
    lc.add_operator("op@example.jp", "Op", "operator")
    lc.add_operator("viewer@example.jp", "Viewer", "viewer")
    lc.add_operator(ADMIN_EMAIL, "Admin", "admin")
    for email in ("op@example.jp", "viewer@example.jp"):
        http = lc.client()
        assert lc.login_as(email, http=http).status_code == 302
        page = http.get(f"/console/content?draft={draft}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert 'id="content-admin-only"' in html and 'id="draft-publish"' not in html
        token = csrf_of(html)
        assert http.post("/console/content/publish", data={"csrf_token": token, "draft": draft}).status_code == 403
        assert http.post("/console/content/activate", data={"csrf_token": token, "label": ""}).status_code == 403
        assert upload(lc, edited("2"), http=http).status_code == 403
    assert lc.svc.versions is not None and lc.svc.versions.current().label == ""
