"""The try-it page's channel ("web"): the page's endpoints, the worker's WebChat transport, the inbox.

The page is driven here through Flask's test client exactly as its JavaScript drives it (the
buttons' data from the delivered messages, the CSRF header, a random event id per tap); the worker
is the one ``crmbot worker`` builds, drained on the test's clock. The console's login comes first
(the page is one of its pages). tests/browser/ drives the same page in a real browser.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from bot import webchat
from bot.app import Services, build_services, build_worker, create_app
from bot.worker import Crash, NoFaults, Outcome, WorkerThread
from conversations import jobs, keys
from conversations.content import load_script
from conversations.jobs import Job
from conversations.keys import Subject
from tests.bot.console.conftest import PASSWORD, console_config, csrf_of
from tests.conftest import FakeClock

TRY = "/console/try/"


@dataclass
class Crasher(NoFaults):
    """Crash after the first delivery of each job, before its outcome is recorded (a worker dying there)."""

    armed: bool = False
    crashed: list[str] = field(default_factory=list)

    def after_deliver(self, job: Job, outcome: Outcome) -> None:
        if self.armed and job.id not in self.crashed:
            self.crashed.append(job.id)
            raise Crash("after_deliver")


@dataclass
class TryPage:
    """A browser session on /console/try: what its script would do."""

    http: Any
    svc: Services
    worker: WorkerThread
    clock: FakeClock
    r: redis.Redis
    csrf: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)

    def login(self) -> None:
        token = csrf_of(self.http.get("/console/login").get_data(as_text=True))
        res = self.http.post("/console/login", data={"password": PASSWORD, "csrf_token": token})
        assert res.status_code == 302

    def open(self, path: str = TRY) -> str:
        res = self.http.get(path)
        assert res.status_code == 200
        page = res.get_data(as_text=True)
        self.csrf = re.search(r'data-csrf="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        return page

    @property
    def user(self) -> Subject:
        with self.http.session_transaction(TRY) as s:
            return Subject("web", s["try_user"])

    def settle(self) -> int:
        return self.worker.drain()

    def fetch(self, after: int | None = None) -> dict[str, Any]:
        after = self.seen[-1]["n"] if after is None and self.seen else (after or 0)
        res = self.http.get(f"/console/try/messages?after={after}")
        assert res.status_code == 200, res.get_data(as_text=True)
        body = res.get_json()
        self.seen += body["messages"]
        return body

    def post(self, payload: dict[str, Any], *, csrf: str | None = None, event: str | None = None) -> Any:
        payload = {"event": event or uuid.uuid4().hex, **payload}
        return self.http.post("/console/try/send", json=payload, headers={"X-CSRF-Token": self.csrf if csrf is None
                                                                          else csrf})

    def buttons(self) -> list[dict[str, str]]:
        """The quick replies the page shows: the newest message's buttons, if it is the bot's."""
        latest = self.seen[-1]
        return latest["buttons"] if latest["from"] == "bot" else []

    def tap(self, label_start: str) -> None:
        chosen = next(b for b in self.buttons() if b["label"].startswith(label_start))
        res = self.post({"data": chosen["data"], "echo": chosen["echo"]})
        assert res.status_code == 200, res.get_data(as_text=True)
        self.clock.advance(20)  # a person reads the next question: no double tap
        self.settle()
        self.fetch()


@pytest.fixture
def page(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> Iterator[TryPage]:
    config = console_config(redis_url, tmp_path)
    svc = build_services(config, clock=clock)
    app = create_app(services=svc)
    faults = Crasher()
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock, faults=faults))
    worker.faults = faults  # type: ignore[attr-defined]
    try:
        p = TryPage(app.test_client(), svc, worker, clock, r)
        p.login()
        yield p
    finally:
        worker.close()


def test_a_new_visitor_is_greeted_by_the_worker_not_by_the_web_tier(page: TryPage) -> None:
    html = page.open()
    assert "ブラウザで試す" in html and "集計には含まれません" in html
    body = page.fetch()
    assert body["messages"] == [] and body["pending"] is True  # committed; the worker has not run
    assert page.settle() == 1
    body = page.fetch()
    assert [m["kind"] for m in body["messages"]] == ["greeting"]
    assert "友だち追加ありがとうございます" in body["messages"][0]["text"]
    assert [b["label"] for b in page.buttons()] == ["診断をはじめる"]
    assert body["pending"] is False and body["last"] == 1
    page.open()  # coming back: same user, greeted once
    assert page.settle() == 0 and page.fetch()["messages"] == []


def test_the_whole_diagnosis_by_tapping(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    assert page.seen[-2] == {"n": 2, "from": "user", "kind": "said", "text": "診断をはじめる", "buttons": []}
    assert page.seen[-1]["kind"] == "question" and page.seen[-1]["text"].startswith("Q1/10")
    assert [b["label"][:2] for b in page.buttons()] == ["A:", "B:", "C:", "D:", "最初", "用語"]  # no "back" at Q1
    for letter in "AAAAAAABC":
        page.tap(letter + ":")
    page.tap("B:")  # Q10
    kinds = [m["kind"] for m in page.seen[-3:]]
    assert kinds == ["said", "result", "qualify"]  # the offers come with the last question's thanks
    card = page.seen[-2]["card"]
    assert card["tier"] == "B" and card["label"] == "B評価" and card["answers"] == "AAAAAAABCB"
    assert "7/10" in card["count"]
    assert card["point_title"].startswith("Q9 ")  # the C at Q9: the one point to fix
    user = page.user
    assert user.transport == "web"
    assert page.r.get(keys.conv(user)) is not None  # the same store as LINE


def test_back_and_start_over(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    page.tap("A:")
    page.tap("B:")
    assert page.seen[-1]["text"].startswith("Q3/10")
    page.tap("1問もどる")
    assert page.seen[-1]["text"].startswith("Q2/10")
    page.tap("最初からやり直す？")  # asks first; the place is kept
    assert page.seen[-1]["text"] == load_script("ja").text("restart_confirm", count=1)
    page.tap("いいえ、続ける")
    assert page.seen[-1]["text"].startswith("Q2/10")
    page.tap("最初からやり直す？")
    page.tap("はい、最初から")
    assert page.seen[-1]["text"].startswith("Q1/10")


def test_typed_text_works_as_on_line(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    for line, expect in (("診断", "Q1/10"), ("ａ", "Q2/10"), ("B: だいたい", "Q3/10"), ("こんにちは", "Q3/10")):
        assert page.post({"text": line}).status_code == 200
        page.clock.advance(20)
        page.settle()
        page.fetch()
        assert page.seen[-1]["text"].startswith(expect), (line, page.seen[-1])
        said = next(m for m in reversed(page.seen) if m["from"] == "user")
        assert said["text"] == line


def test_a_repeated_post_is_shown_and_applied_once(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    start = page.buttons()[0]
    for _ in range(3):  # the page retries with the same event id
        assert page.post({"data": start["data"], "echo": start["echo"]}, event="retry-0123456789").status_code == 200
    page.settle()
    page.fetch()
    assert [m["kind"] for m in page.seen] == ["greeting", "said", "question"]


def test_a_redelivered_job_is_appended_once(page: TryPage) -> None:
    """A worker that dies after appending and before recording: the next worker delivers the job
    again (a recovery) and the inbox still holds its messages once."""
    page.open()
    page.worker.faults.armed = True  # type: ignore[attr-defined]
    assert page.settle() == 1
    assert len(page.worker.faults.crashed) == 1  # type: ignore[attr-defined]
    assert [m["kind"] for m in page.fetch(0)["messages"]] == ["greeting"]
    assert page.r.hlen(jobs.mailbox(page.user.tag_name)) == 1  # not recorded as delivered
    page.clock.advance(page.svc.config.outbox_lease + 1)  # the claim runs out
    assert page.settle() == 1  # the recovery
    body = page.fetch(0)
    assert [m["kind"] for m in body["messages"]] == ["greeting"] and body["pending"] is False
    assert page.r.hlen(jobs.mailbox(page.user.tag_name)) == 0


def test_the_inbox_and_its_marks_stay_bounded_and_still_append_once(r: redis.Redis) -> None:
    """Every append leaves a mark (the job id or the typed message's event id); the marks are trimmed with
    the messages, by the same bound: after many messages the hash holds at most 2 * keep + 2 fields."""
    keep = 5
    inbox = webchat.Inbox(r, keep=keep)
    who = webchat.subject(uuid.uuid4().hex)
    for i in range(60):
        assert inbox.said(who, f"event-{i:03d}", f"message {i}")
        assert r.hlen(keys.inbox_meta(who)) <= 2 * keep + 2
    assert r.llen(keys.inbox(who)) == keep and r.hlen(keys.inbox_meta(who)) == 2 * keep + 2
    page = inbox.read(who)
    assert page.last == 60 and [m["n"] for m in page.messages] == [56, 57, 58, 59, 60]
    assert [m["text"] for m in page.messages][-1] == "message 59"
    for i in range(55, 60):  # the last appends are still recognised: a repeated post shows nothing new
        assert not inbox.said(who, f"event-{i:03d}", "again")
    assert inbox.read(who).last == 60
    assert inbox.said(who, "event-000", "an old mark was dropped with its message")  # appended, as a new one
    assert r.hlen(keys.inbox_meta(who)) == 2 * keep + 2 and r.ttl(keys.inbox_meta(who)) > 0
    inbox.clear(who)


def test_the_page_still_works_after_more_messages_than_it_keeps(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    start = page.buttons()[0]
    inbox = webchat.Inbox(page.r)  # the page's own bound
    for i in range(webchat.INBOX_MAX + 50):  # months of chatting, appended as the page does
        inbox.said(page.user, f"old-{i:04d}", "...")
    meta = keys.inbox_meta(page.user)
    assert page.r.hlen(meta) == 2 * webchat.INBOX_MAX + 2
    page.seen.clear()
    page.fetch(0)
    assert len(page.seen) == webchat.INBOX_MAX
    assert page.post({"data": start["data"], "echo": start["echo"]}, event="tap-after-many").status_code == 200
    assert page.post({"data": start["data"], "echo": start["echo"]}, event="tap-after-many").status_code == 200
    page.settle()
    newest = page.fetch()["messages"]
    assert [m["kind"] for m in newest] == ["said", "question"]  # shown once, answered once
    assert newest[-1]["n"] == webchat.INBOX_MAX + 50 + 3  # greeting, the old ones, the tap, the question
    assert page.r.hlen(meta) == 2 * webchat.INBOX_MAX + 2 and page.r.llen(keys.inbox(page.user)) == webchat.INBOX_MAX


def test_polling_returns_only_newer_messages(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    assert [m["n"] for m in page.fetch(0)["messages"]] == [1, 2, 3]
    assert [m["n"] for m in page.fetch(1)["messages"]] == [2, 3]
    assert page.fetch(3)["messages"] == []
    assert page.http.get("/console/try/messages?after=-1").status_code == 400
    assert page.http.get("/console/try/messages?after=x").status_code == 400


def test_no_csrf_token_changes_nothing(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    before = page.r.get(keys.conv(page.user))
    data = page.buttons()[0]["data"]
    for token in ("", "wrong-token"):
        res = page.post({"data": data}, csrf=token)
        assert res.status_code == 400 and res.get_json() == {"error": "csrf"}
    assert page.http.post("/console/try/reset", headers={"X-CSRF-Token": "nope"}).status_code == 400
    page.settle()
    assert page.fetch()["messages"] == []
    assert page.r.get(keys.conv(page.user)) == before


@pytest.mark.parametrize(
    "payload",
    [{"event": "short"}, {"event": "bad id with spaces"}, {"event": "hello"}, {}, {"text": ""}, {"text": "x" * 2001},
     {"data": 5}],
)
def test_bad_posts_are_refused(page: TryPage, payload: dict[str, Any]) -> None:
    page.open()
    event = payload.pop("event", None)
    res = page.post(payload, event=event)
    assert res.status_code == 400
    page.settle()
    assert [m["kind"] for m in page.fetch()["messages"]] == ["greeting"]


def test_reset_starts_a_new_test_user(page: TryPage) -> None:
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    first = page.user
    res = page.http.post("/console/try/reset", headers={"X-CSRF-Token": page.csrf})
    assert res.status_code == 200
    second = page.user
    assert second != first and second.transport == "web"
    page.settle()
    page.seen.clear()
    assert [m["kind"] for m in page.fetch(0)["messages"]] == ["greeting"]
    assert page.r.get(keys.conv(first)) is not None  # the old test user stays (a test lead)


def test_redis_down_answers_503(page: TryPage, monkeypatch: pytest.MonkeyPatch) -> None:
    page.open()
    page.settle()
    page.fetch()
    data = page.buttons()[0]["data"]

    def down(*args: Any, **kwargs: Any) -> Any:
        raise redis.ConnectionError("down")

    monkeypatch.setattr(page.svc.redis.connection_pool, "get_connection", down)
    assert page.post({"data": data}).status_code == 503
    assert page.http.get("/console/try/messages?after=0").status_code == 503


def test_the_page_loads_nothing_from_elsewhere(page: TryPage) -> None:
    html = page.open()
    res = page.http.get(TRY)
    assert "script-src 'self'" in res.headers["Content-Security-Policy"]  # an inline script would not run
    assert res.headers["X-Frame-Options"] == "DENY" and res.headers["Cache-Control"] == "no-store"
    assert "<script>" not in html and " style=" not in html and " on" + "click=" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    for name in ("try.js", "try.css"):
        res = page.http.get(f"/console/try/static/{name}")
        assert res.status_code == 200
        assert "http://" not in res.get_data(as_text=True) and "https://" not in res.get_data(as_text=True)


def test_without_a_login_nothing_opens(page: TryPage) -> None:
    http = page.http.application.test_client()  # another browser: no session
    res = http.get(TRY)
    assert res.status_code == 302 and res.headers["Location"].startswith("/console/login")
    assert http.get("/console/try/messages?after=0").status_code == 302
    assert http.post("/console/try/send", json={"event": "x" * 16, "text": "診断"}).status_code == 302
    assert http.get("/console/try").status_code == 308  # the nav's address is /console/try/
    assert list(page.r.scan_iter(match="crmbot:{u:web:*")) == []  # nobody was made, nothing stored


def test_english(r: redis.Redis, redis_url: str, clock: FakeClock, tmp_path: Path) -> None:
    config = console_config(redis_url, tmp_path, locale="en")
    svc = build_services(config, clock=clock)
    worker = WorkerThread(lambda: build_worker(config, svc.script, clock=clock))
    try:
        p = TryPage(create_app(services=svc).test_client(), svc, worker, clock, r)
        p.login()
        html = p.open()
        assert 'lang="en"' in html and "Try it in the browser" in html
        p.settle()
        p.fetch()
        assert [b["label"] for b in p.buttons()] == [svc.script.text("start_button")]
    finally:
        worker.close()


def test_render_skips_an_output_it_does_not_know() -> None:
    script = load_script("ja")
    got = webchat.render(script, [{"type": "no_such_output"}, {"type": "question", "sid": 1, "q": 0}])
    assert [m["kind"] for m in got] == ["question"]
    assert got[0]["buttons"][0]["data"] == "a:1:0:A"


def test_a_try_it_diagnosis_is_a_test_lead_in_no_figure(page: TryPage) -> None:
    from conversations.analytics import Analytics

    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    for letter in "AAAAAAAAAB":
        page.tap(letter + ":")
    assert page.seen[-2]["card"]["tier"] == "A"  # the result, then the first qualification question
    analytics = Analytics(page.r, clock=page.clock)
    leads = analytics.leads(channel="web")
    assert len(leads) == 1 and leads[0].test and leads[0].user_id == page.user.user_id
    assert leads[0].answers == "AAAAAAAAAB" and leads[0].tier == "A"
    funnel = analytics.funnel()
    assert funnel["started"] == 0 and funnel["finished"] == 0 and funnel["tiers"] == {"A": 0, "B": 0, "C": 0}
    assert analytics.leads() == [] and analytics.followers() == 0


def test_a_newcomer_sees_their_try_in_the_overview_when_they_ask_for_tries(page: TryPage) -> None:
    """The figures leave tries out, and the overview's channel filter shows them on request: the
    person who ran ./scripts/run and took the diagnosis here sees it there."""
    page.open()
    page.settle()
    page.fetch()
    page.tap("診断をはじめる")
    for letter in "AAAAAAABCD":
        page.tap(letter + ":")
    default = page.http.get("/console/").get_data(as_text=True)
    tries = page.http.get("/console/?channel=web").get_data(as_text=True)
    figure = re.compile(r'id="fig-finished"[^>]*>\s*([0-9,]+)')
    assert figure.search(default).group(1) == "0"  # type: ignore[union-attr]
    assert figure.search(tries).group(1) == "1"  # type: ignore[union-attr]
    assert 'value="web" selected' in tries
    leads = page.http.get("/console/leads?channel=web").get_data(as_text=True)
    assert leads.count('class="lead-row"') + leads.count("lead-row ") >= 1
