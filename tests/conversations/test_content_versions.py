"""Content versions (conversations/content_versions.py) on the suite's Redis: an upload checked as at start-up,
its problem named by line and field, nothing written for a bad one; drafts, publishing, labels, going back;
the pointer read at most every few seconds per process; the version a step speaks."""

from __future__ import annotations

import pytest
import redis

from conversations import keys
from conversations.content import SCRIPTS_DIR, load_script
from conversations.content_versions import (
    ContentVersions,
    Draft,
    Problem,
    check,
    locate,
    step_label,
)
from conversations.machine import ASKING, DONE, IDLE, Conv
from tests.conftest import FakeClock

JA = (SCRIPTS_DIR / "diagnosis.ja.toml").read_text(encoding="utf-8")
OLD_Q1 = "売上の合計ではなく、"


def edited(mark: str) -> str:
    assert JA.count(OLD_Q1) == 1
    return JA.replace(OLD_Q1, f"（{mark}）{OLD_Q1}")


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), start=1) if needle in line)


def test_a_syntax_error_names_its_line() -> None:
    bad = JA.replace('offer = "', "offer = ", 1)
    got = check(bad.encode(), "ja")
    assert isinstance(got, Problem)
    assert got.field == "(file)" and got.line == line_of(bad, "offer = ") and "TOML" in got.problem


def test_a_field_error_names_the_keys_line_and_field() -> None:
    bad = JA.replace('start_button = "診断をはじめる"', 'start_button = ""', 1)
    got = check(bad.encode(), "ja")
    assert got == Problem("texts.start_button", "missing or empty text", line_of(bad, 'start_button = ""'))


def test_a_field_inside_an_array_of_tables_is_found() -> None:
    # the third question's B choice: an inline table inside the third [[questions]]
    third = [n for n, line in enumerate(JA.splitlines(), start=1) if line.strip() == "[[questions]]"][2]
    at = locate(JA, "questions[3].choices.B.label")
    assert at is not None and at > third and JA.splitlines()[at - 1].lstrip().startswith("B = ")
    second_sentence = [n for n, line in enumerate(JA.splitlines(), start=1)
                       if line.strip() == "[[tiers.B.summary]]"][1]
    at = locate(JA, "tiers.B.summary[2].about")
    assert at is not None and at > second_sentence and JA.splitlines()[at - 1].lstrip().startswith("about")


def test_a_missing_key_points_at_its_table_and_a_wrong_locale_at_its_line() -> None:
    bad = JA.replace('offer = "', 'offer_typo = "', 1)
    got = check(bad.encode(), "ja")
    assert isinstance(got, Problem) and got.field == "texts.offer"
    assert got.line == line_of(bad, "[texts]")
    got = check(JA.encode(), "en")  # the deployment speaks en: a ja file is refused at its locale line
    assert isinstance(got, Problem) and got.field == "locale" and got.line == line_of(JA, 'locale = "ja"')


def test_a_file_that_is_not_utf8_is_refused() -> None:
    got = check(JA.encode("utf-16"), "ja")
    assert isinstance(got, Problem) and got.field == "(file)"


def versions(r: redis.Redis, ticker: FakeClock | None = None) -> ContentVersions:
    return ContentVersions(r, load_script("ja"), ticker=ticker or FakeClock())


def test_a_bad_upload_writes_nothing(r: redis.Redis) -> None:
    cv = versions(r)
    got = cv.upload(JA.replace('offer = "', "offer = ", 1).encode(), by="Admin", now=1.0)
    assert isinstance(got, Problem)
    assert r.keys("*") == []
    assert cv.active()[0] == "" and cv.active()[1] is cv.deployed


def test_publish_labels_and_going_back(r: redis.Redis) -> None:
    cv = versions(r)
    one = cv.upload(edited("1").encode(), by="Admin", now=10.0)
    assert isinstance(one, Draft)
    assert r.ttl(keys.content_draft(one.id)) > 0 and r.ttl(keys.content(one.script.version)) > 0
    assert cv.active()[0] == ""  # a draft changes nothing in use
    assert cv.publish(one, by="Admin", now=11.0) == ("v1", True)
    assert r.ttl(keys.content(one.script.version)) == -1  # published: kept
    two = cv.upload(edited("2").encode(), by="Sato", now=20.0)
    assert isinstance(two, Draft)
    assert cv.publish(two, by="Sato", now=21.0) == ("v2", True)
    label, script = cv.active()
    assert label == "v2" and "（2）" in script.questions[0].text
    again = cv.upload(edited("1").encode(), by="Sato", now=30.0)
    assert isinstance(again, Draft)
    assert cv.publish(again, by="Sato", now=31.0) == ("v1", False)  # the same text keeps its label
    assert [(p.label, p.by, p.at) for p in cv.published()] == [("v2", "Sato", 21.0), ("v1", "Admin", 11.0)]
    assert cv.activate("v2", by="Admin", now=40.0) and cv.active()[0] == "v2"
    assert cv.current().by == "Admin" and cv.current().at == 40.0
    assert not cv.activate("v9", by="Admin", now=41.0) and cv.active()[0] == "v2"
    assert cv.activate("", by="Admin", now=42.0)
    assert cv.active() == ("", cv.deployed)


def test_another_process_sees_a_publish_once_its_cache_expires(r: redis.Redis) -> None:
    tick = FakeClock(0.0)
    other = versions(r, tick)
    assert other.active()[0] == ""  # read once
    cv = versions(r)
    draft = cv.upload(edited("1").encode(), by="Admin", now=1.0)
    assert isinstance(draft, Draft)
    cv.publish(draft, by="Admin", now=2.0)
    assert other.active()[0] == ""  # cached: no round trip per webhook
    tick.t = other.ttl
    label, script = other.active()
    assert label == "v1" and script.version == draft.script.version


def test_a_version_the_running_code_refuses_falls_back_to_the_deployed_file(r: redis.Redis) -> None:
    cv = versions(r)
    draft = cv.upload(edited("1").encode(), by="Admin", now=1.0)
    assert isinstance(draft, Draft)
    cv.publish(draft, by="Admin", now=2.0)
    r.set(keys.content(draft.script.version), b'{"locale":"ja","path":"x","text":"locale = 1"}')
    fresh = versions(r)
    assert fresh.active() == ("", fresh.deployed)  # new diagnoses record the file they run
    assert fresh.script_of("d:0123456789abcdef") is fresh.deployed  # an unknown draft


@pytest.mark.parametrize(("before", "after", "ongoing", "stored", "said"), [
    # a new diagnosis begins: it runs the version in use
    (Conv(state=DONE, sid=1, ver="v1"), Conv(state=ASKING, sid=2, ver="v1"), False, "v3", "v3"),
    # one under way keeps its own, whatever is in use
    (Conv(state=ASKING, sid=2, ver="v1"), Conv(state=ASKING, sid=2, q=1, ver="v1"), True, "v1", "v1"),
    # the step that finishes it too
    (Conv(state=ASKING, sid=2, ver="v1"), Conv(state=DONE, sid=2, ver="v1"), True, "v1", "v1"),
    # no diagnosis under way (or an expired one): what is said is the version in use; the record keeps its own
    (Conv(state=DONE, sid=2, ver="v1"), Conv(state=DONE, sid=2, ver="v1"), False, "v1", "v3"),
    (Conv(state=IDLE), None, False, None, "v3"),
])
def test_step_label(before: Conv, after: Conv | None, ongoing: bool, stored: str | None, said: str) -> None:
    conv, label = step_label(before, after, ongoing=ongoing, start="v3")
    assert (conv.ver if conv is not None else None) == stored and label == said
