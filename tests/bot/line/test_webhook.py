"""The LINE diagnosis end to end: signed webhooks -> Flask -> core -> real Redis -> fake LINE API."""

from __future__ import annotations

import json
import threading

import pytest

from bot import views
from bot.core import MAX_CAS_ATTEMPTS
from conversations import keys
from conversations.keys import Subject
from conversations.machine import Conv
from conversations.store import RedisStore, Snapshot
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import LineUser, answer_rows, last_quick_reply_data, sign, texts
from tests.fakes.line_api import REPLY


def conv_of(env: LineEnv, user: LineUser) -> Conv:
    return Conv.from_json(env.r.get(keys.conv(Subject("line", user.user_id))))


def answer_button(env: LineEnv, user: LineUser, letter: str) -> str:
    data = [d for d in last_quick_reply_data(env.fake.delivered(user.user_id)) if d.startswith("a:")]
    assert data, f"no answer buttons in the last message: {env.fake.summary()}"
    return next(d for d in data if d.endswith(":" + letter))


def take(env: LineEnv, user: LineUser, answers: str) -> list[dict]:
    """Follow, start, and tap the ten answers from the buttons the bot actually sent."""
    user.follow()
    env.settle()
    user.tap(last_quick_reply_data(env.fake.delivered(user.user_id))[0])  # the start button
    env.settle()
    for letter in answers:
        user.tap(answer_button(env, user, letter))
        env.settle()
    return env.fake.delivered(user.user_id)


@pytest.mark.parametrize(
    ("answers", "label", "count"),
    [
        ("AAAAAAAAAA", "A評価", 10),
        ("AAAAAAAAAB", "A評価", 9),
        ("AAAAAAAACD", "B評価", 8),
        ("AAAAAAABCD", "B評価", 7),
        ("AAAAAABBCD", "C評価", 6),
        ("DDDDDDDDDD", "C評価", 0),
    ],
)
def test_full_diagnosis_reaches_each_tier(line_env: LineEnv, answers: str, label: str, count: int) -> None:
    user = line_env.user()
    delivered = take(line_env, user, answers)
    # greeting, Q1..Q10, then the result and the first qualification question (the offers come one a reply
    # after it: tests/bot/line/test_followups.py): all by reply (no push quota used)
    assert len(delivered) == 13
    assert {r.path for r in line_env.fake.recorded() if r.method == "POST"} == {REPLY}  # (the profile is a GET)
    assert "Q3/10" in delivered[3]["text"]
    result, qualify = delivered[-2:]
    assert qualify["type"] == "flex"  # the first qualification question, its buttons in the bubble
    assert '"data": "f:0:0"' in json.dumps(qualify)  # with its skip button
    assert result["type"] == "flex"
    assert label in result["altText"] and f"{count}/10" in result["altText"]
    body = json.dumps(result["contents"], ensure_ascii=False)
    assert label in body
    assert [r["letter"] for r in answer_rows(result)] == list(answers)
    state = conv_of(line_env, user)
    assert state.state == "done" and state.last == answers


def test_result_names_the_weakest_question_as_the_point_to_fix(line_env: LineEnv) -> None:
    user = line_env.user()
    delivered = take(line_env, user, "AACAAADAAB")  # the D at Q7 is the weakest
    body = json.dumps(delivered[-2]["contents"], ensure_ascii=False)  # the result, then the first question
    assert "Q7 " in body
    assert line_env.svc.script.questions[6].advice in body


def test_follow_greets_and_offers_to_start(line_env: LineEnv) -> None:
    user = line_env.user()
    user.follow()
    line_env.settle()
    [greeting] = line_env.fake.delivered(user.user_id)
    assert greeting["text"] == views.greeting_text(line_env.svc.script)
    assert greeting["text"].endswith(line_env.svc.script.privacy.no_policy)  # no CRMBOT_PRIVACY_URL here
    assert last_quick_reply_data([greeting]) == ["s"]


def test_question_has_progress_and_lettered_quick_replies(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    user.say("b")
    line_env.settle()
    q2 = line_env.fake.delivered(user.user_id)[-1]
    assert q2["text"].startswith("Q2/10")
    labels = [i["action"]["label"] for i in q2["quickReply"]["items"]]
    assert [x[0] for x in labels[:4]] == ["A", "B", "C", "D"]
    assert labels[4:] == ["1問もどる", "最初からやり直す？", "用語"]
    assert conv_of(line_env, user).answers == "B"


def test_redelivered_event_is_applied_and_answered_once(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    ev = user.postback_event("a:1:0:A")
    user.send(ev)
    line_env.settle()
    redelivered = dict(ev, deliveryContext={"isRedelivery": True})
    user.send(redelivered)
    user.send(ev)
    line_env.settle()
    assert conv_of(line_env, user).answers == "A"
    assert len(line_env.fake.delivered(user.user_id)) == 2  # Q1, Q2: nothing twice
    assert len(line_env.fake.recorded()) == 2


def test_concurrent_taps_for_one_question_advance_exactly_one_step(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    events = [user.postback_event("a:1:0:" + x) for x in "ABAB"]  # a nervous double tap, twice
    barrier = threading.Barrier(len(events))
    statuses: list[int] = []

    def tap(ev: dict) -> None:
        client = line_env.http.application.test_client()  # one client per thread
        body = json.dumps({"destination": "U" + "d" * 32, "events": [ev]}).encode()
        barrier.wait()
        statuses.append(client.post("/line/webhook", data=body, headers={"X-Line-Signature": sign(body)}).status_code)

    threads = [threading.Thread(target=tap, args=(ev,)) for ev in events]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    line_env.settle()
    assert statuses == [200] * 4
    state = conv_of(line_env, user)
    assert state.q == 1 and len(state.answers) == 1
    # One tap won. The other tap of the same letter is a silent double tap; the two taps of the
    # other letter are stale: each gets "not counted, you are on Q2" and Q2 again.
    got = texts(line_env.fake.delivered(user.user_id))[1:]
    stale = line_env.svc.script.text("stale", number=2)
    assert got.count(stale) == 2
    assert sum(t.startswith("Q2/10") for t in got) == 3


def test_stale_button_never_moves_the_state(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    for x in "AB":
        line_env.settle()
        user.say(x)
    line_env.settle()
    before = conv_of(line_env, user)
    line_env.clock.advance(60)  # not a double tap
    user.tap("a:1:0:D")  # an old Q1 button
    line_env.settle()
    after = conv_of(line_env, user)
    assert (after.q, after.answers) == (before.q, before.answers) == (2, "AB")
    last = line_env.fake.delivered(user.user_id)[-2:]
    assert "Q3" in last[0]["text"] and last[1]["text"].startswith("Q3/10")


def test_button_from_an_earlier_diagnosis_is_stale(line_env: LineEnv) -> None:
    user = line_env.user()
    take(line_env, user, "AAAAAAAAAA")
    user.tap("s")
    line_env.settle()
    line_env.clock.advance(60)
    user.tap("a:1:0:C")  # diagnosis 1's button; diagnosis 2 is open
    line_env.settle()
    state = conv_of(line_env, user)
    assert (state.sid, state.q, state.answers) == (2, 0, "")


def test_back_restart_and_resume(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    for x in "ABC":
        line_env.settle()
        user.say(x)
    line_env.settle()
    user.tap("b:1:3")
    line_env.settle()
    assert (conv_of(line_env, user).q, conv_of(line_env, user).answers) == (2, "AB")
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q3/10")
    # the user goes away, comes back and types the start word: continue or start over?
    line_env.clock.advance(2 * 3600)
    user.say("診断")
    line_env.settle()
    prompt = line_env.fake.delivered(user.user_id)[-1]
    assert "Q3/10" in prompt["text"] and last_quick_reply_data([prompt]) == ["c:1", "r"]
    user.tap("c:1")
    line_env.settle()
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q3/10")
    assert conv_of(line_env, user).state == "asking"
    user.tap("r")  # start over? asks first and keeps the place
    line_env.settle()
    confirm = line_env.fake.delivered(user.user_id)[-1]
    assert confirm["text"] == line_env.svc.script.text("restart_confirm", count=2)
    assert last_quick_reply_data([confirm]) == ["r:1", "c:1"]
    state = conv_of(line_env, user)
    assert (state.state, state.sid, state.q, state.answers) == ("confirm", 1, 2, "AB")
    user.tap("r:1")
    line_env.settle()
    state = conv_of(line_env, user)
    assert (state.sid, state.q, state.answers) == (2, 0, "")
    assert line_env.fake.delivered(user.user_id)[-1]["text"].startswith("Q1/10")


def test_unfinished_diagnosis_expires_and_results_are_kept(line_env: LineEnv) -> None:
    user = line_env.user()
    take(line_env, user, "ABABABABAB")
    user.say("診断")
    line_env.settle()
    user.say("A")
    line_env.settle()
    line_env.clock.advance(8 * 86400)
    user.tap("a:2:1:B")
    line_env.settle()
    state = conv_of(line_env, user)
    assert state.state == "done" and state.last == "ABABABABAB"
    assert line_env.svc.script.text("expired") in texts(line_env.fake.delivered(user.user_id))


def test_typed_answers_are_normalised_and_anything_else_re_asks(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    for typed in ["Ａ", "ｂ", "c: だいたいそう", "え？", "d"]:
        line_env.settle()
        user.say(typed)
    line_env.settle()
    assert conv_of(line_env, user).answers == "ABCD"
    hint = line_env.svc.script.text("hint")
    assert hint in texts(line_env.fake.delivered(user.user_id))


def test_sticker_and_image_messages_get_a_gentle_hint(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    user.send(user.event("message", message={"type": "sticker", "id": "1", "quoteToken": "q", "packageId": "1",
                                             "stickerId": "1", "stickerResourceType": "STATIC"}))
    user.send(user.event("message", message={"type": "image", "id": "2", "quoteToken": "q",
                                             "contentProvider": {"type": "line"}}))
    line_env.settle()
    non_text = line_env.svc.script.text("non_text")
    assert texts(line_env.fake.delivered(user.user_id)).count(non_text) == 2
    assert conv_of(line_env, user).q == 0


def test_unknown_event_types_and_empty_lists_change_nothing(line_env: LineEnv) -> None:
    user = line_env.user()
    before = line_env.r.dbsize()
    assert user.post().status_code == 200  # empty events list (LINE's verify request)
    user.send(user.event("unsend", reply=False, unsend={"messageId": "1"}))
    user.send(user.event("videoPlayComplete", videoPlayComplete={"trackingId": "t"}))
    user.send(user.event("beacon", beacon={"hwid": "d41d8cd98f", "type": "enter"}))
    line_env.settle()
    assert line_env.r.dbsize() == before
    assert line_env.fake.recorded() == []


def test_group_and_standby_events_are_ignored(line_env: LineEnv) -> None:
    user = line_env.user()
    group = user.text_event("診断")
    group["source"] = {"type": "group", "groupId": "C" + "1" * 32, "userId": user.user_id}
    standby = user.text_event("診断")
    standby["mode"] = "standby"
    standby.pop("replyToken")
    user.send(group, standby)
    line_env.settle()
    assert line_env.r.dbsize() == 0 and line_env.fake.recorded() == []


@pytest.mark.parametrize("signature", ["", "bm90IGEgc2lnbmF0dXJl", None])
def test_bad_or_missing_signature_is_refused_and_changes_nothing(line_env: LineEnv, signature: str | None) -> None:
    user = line_env.user()
    body = json.dumps({"destination": "x", "events": [user.text_event("診断")]}).encode()
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Line-Signature"] = signature or sign(body, "another-secret")
    res = line_env.http.post("/line/webhook", data=body, headers=headers)
    assert res.status_code == 400
    assert line_env.r.dbsize() == 0 and line_env.fake.recorded() == []


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"events": "nope"}', b"\xff\xfe", b""])
def test_malformed_body_with_valid_signature_is_400(line_env: LineEnv, raw: bytes) -> None:
    res = line_env.user().post(raw=raw)
    assert res.status_code == 400
    assert line_env.r.dbsize() == 0


def test_unfollow_removes_in_progress_state(line_env: LineEnv) -> None:
    user = line_env.user()
    user.say("診断")
    line_env.settle()
    user.say("A")
    line_env.settle()
    assert line_env.r.exists(keys.conv(Subject("line", user.user_id)))
    user.send(user.event("unfollow", reply=False))
    assert not line_env.r.exists(keys.conv(Subject("line", user.user_id)))


def test_the_web_process_never_calls_the_line_api(line_env: LineEnv) -> None:
    """The webhook commits and answers; only the worker talks to LINE."""
    user = line_env.user()
    for text in ("診断", "A", "B"):
        res = user.post(user.text_event(text))
        assert res.status_code == 200
    assert line_env.fake.recorded() == []  # nothing reached LINE from the web process
    assert conv_of(line_env, user).state == "asking"  # the state was committed before any send
    assert line_env.settle() == 3
    assert len(line_env.fake.delivered(user.user_id)) == 3


def test_line_disabled_answers_503(r, redis_url, clock) -> None:
    from bot.app import build_services, create_app
    from bot.config import Config

    svc = build_services(Config(redis_url=redis_url), clock=clock)
    res = create_app(services=svc).test_client().post("/line/webhook", data=b"{}")
    assert res.status_code == 503
    assert "not configured" in res.get_data(as_text=True)


class _Contended(RedisStore):
    """Another writer changes the user's record between every read and commit (real contention)."""

    def get(self, subject: Subject, event_id: str) -> Snapshot:
        snap = super().get(subject, event_id)
        self.r.set(keys.conv(subject), Conv(state="idle", n=snap.conv.n + 1000 + len(event_id)).to_json())
        self.r.incr("test:contended")
        return snap


def test_a_record_that_keeps_changing_is_contention_not_an_outage(line_env: LineEnv) -> None:
    real = line_env.svc.bot.store
    line_env.svc.bot.store = _Contended(line_env.r)
    try:
        user = line_env.user()
        ev = user.text_event("診断")
        res = user.post(ev)
        assert res.status_code == 503 and res.get_data(as_text=True) == "busy, try again"
        assert int(line_env.r.get("test:contended")) == MAX_CAS_ATTEMPTS  # it tried, then gave up
        assert line_env.settle() == 0 and line_env.fake.recorded() == []
    finally:
        line_env.svc.bot.store = real
    redelivered = dict(ev, deliveryContext={"isRedelivery": True})
    assert user.post(redelivered).status_code == 200  # LINE's redelivery goes through, once
    line_env.settle()
    assert len(line_env.fake.delivered(user.user_id)) == 1
