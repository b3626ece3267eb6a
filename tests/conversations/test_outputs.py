"""Typed messages: the machine's outputs (a closed union with a JSON round trip in the shape jobs have always
stored), the transports and their typed state in a job, jobs of the first shape read as they were, figures
records, and the type check that fails when an output kind is added that some channel does not render."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conversations import outputs
from conversations.errors import InvalidInput
from conversations.jobs import Figures, Job, read
from conversations.outputs import (
    Advice,
    ConfirmRestart,
    ConsultAck,
    DoneHelp,
    Greeting,
    Heard,
    Notice,
    Offer,
    OptinOffer,
    Question,
    Reminder,
    Result,
    Resume,
)
from conversations.transports import LineBatchState, LineState, NoState, SlackState, Transport

ROOT = Path(__file__).resolve().parents[2]
USER = "U" + "1" * 32
TAG = f"u:line:{USER}"

# Every kind, and the dict a job stores for it: the shape jobs stored before outputs were typed.
SHAPES: list[tuple[outputs.Output, dict[str, Any]]] = [
    (Greeting(), {"type": "greeting"}),
    (Offer(), {"type": "offer"}),
    (Notice("hint"), {"type": "notice", "key": "hint"}),
    (Notice("stale", number=4), {"type": "notice", "key": "stale", "number": 4}),
    (Question(2, 5), {"type": "question", "sid": 2, "q": 5}),
    (Resume(2, 5), {"type": "resume", "sid": 2, "q": 5}),
    (ConfirmRestart(1, 3), {"type": "confirm_restart", "sid": 1, "q": 3}),
    (Result(1, "AABBCCDDAB"), {"type": "result", "sid": 1, "answers": "AABBCCDDAB"}),
    (Result(2, "AAAAAAAAAA", prev="AABBCCDDAB", again=True),
     {"type": "result", "sid": 2, "answers": "AAAAAAAAAA", "prev": "AABBCCDDAB", "again": True}),
    (Result(3, "AABBCCDDAB", peers=((6, 20), (4, 0))),
     {"type": "result", "sid": 3, "answers": "AABBCCDDAB", "peers": [[6, 20], [4, 0]]}),
    (Advice(3, "C"), {"type": "advice", "q": 3, "choice": "C"}),
    (DoneHelp(), {"type": "done_help"}),
    (OptinOffer(), {"type": "optin_offer"}),
    (outputs.FollowOffer(2), {"type": "follow_offer", "sid": 2}),
    (outputs.FollowStep(2, 0), {"type": "follow_step", "q": 2, "step": 0}),
    (outputs.FollowStep(2, 1, "https://example.com/r/f2"),
     {"type": "follow_step", "q": 2, "step": 1, "url": "https://example.com/r/f2"}),
    (ConsultAck(1), {"type": "consult_ack", "sid": 1}),
    (ConsultAck(1, again=True, url="https://example.com/b"),
     {"type": "consult_ack", "sid": 1, "again": True, "url": "https://example.com/b"}),
    (Reminder("B"), {"type": "reminder", "tier": "B"}),
    (Greeting("https://example.com/p"), {"type": "greeting", "privacy_url": "https://example.com/p"}),
    (outputs.Definition(term="LTV"), {"type": "definition", "term": "LTV"}),
    (outputs.Definition(q=0), {"type": "definition", "q": 0}),
    (outputs.Erasure("ask"), {"type": "erasure", "stage": "ask"}),
    (Heard(3), {"type": "heard", "sid": 3}),
    (outputs.Slots(((1796000400, 1796002200),), "Asia/Tokyo"),
     {"type": "slots", "slots": [[1796000400, 1796002200]], "tz": "Asia/Tokyo"}),
    (outputs.Slots(((1796000400, 1796002200),), "Asia/Tokyo", "電話", 1796000400, "0123456789abcdef", "full"),
     {"type": "slots", "slots": [[1796000400, 1796002200]], "tz": "Asia/Tokyo", "fmt": "電話", "more": 1796000400,
      "moving": "0123456789abcdef", "note": "full"}),
    (outputs.BookingNote("gone", tz="Asia/Tokyo"), {"type": "booking", "stage": "gone", "tz": "Asia/Tokyo"}),
    (outputs.BookingNote("cancelled_op", "0123456789abcdef", 1796000400, 1796002200, "Asia/Tokyo", "電話",
                         "ごめんなさい"),
     {"type": "booking", "stage": "cancelled_op", "booking": "0123456789abcdef", "start": 1796000400,
      "end": 1796002200, "tz": "Asia/Tokyo", "fmt": "電話", "message": "ごめんなさい"}),
    (outputs.Qualify(1), {"type": "qualify", "q": 1}),
]


def test_every_kind_is_covered_here() -> None:
    assert {type(o) for o, _ in SHAPES} == set(outputs.KINDS.values())
    assert {d["type"] for _, d in SHAPES} == set(outputs.KINDS)


@pytest.mark.parametrize(("out", "shape"), SHAPES, ids=[f"{d['type']}-{i}" for i, (_, d) in enumerate(SHAPES)])
def test_an_output_is_stored_in_the_shape_jobs_always_had(out: outputs.Output, shape: dict[str, Any]) -> None:
    assert out.to_json() == shape
    assert outputs.from_json(json.loads(json.dumps(shape))) == out
    assert outputs.job_output(shape) == out  # a dict handed to a job becomes the typed output


@pytest.mark.parametrize("bad", [{"type": "question", "sid": 1}, {"type": "question", "sid": "1", "q": 0},
                                 {"type": "advice", "q": 1}, {"type": "reminder"}, {"type": "nothing"}, {},
                                 {"type": "slots", "tz": "Asia/Tokyo"}, {"type": "slots", "slots": [[1]], "tz": "x"},
                                 {"type": "slots", "slots": [], "tz": "Asia/Tokyo", "note": "maybe"},
                                 {"type": "booking", "stage": "lost"}, {"type": "booking"}])
def test_a_malformed_output_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        outputs.from_json(bad)


def test_slack_payloads_and_unknown_kinds_stay_dicts_and_no_channel_takes_them_for_machine_outputs() -> None:
    post = {"type": "slack_post", "text": "t", "blocks": []}
    assert outputs.job_output(post) == post and isinstance(outputs.job_output(post), dict)
    assert outputs.job_output({"type": "sticker"}) == {"type": "sticker"}
    assert outputs.outputs_of([Greeting(), Question(1, 0)]) == [Greeting(), Question(1, 0)]
    with pytest.raises(InvalidInput, match="slack_post"):
        outputs.outputs_of([Greeting(), post])


# ---- jobs ---------------------------------------------------------------------------------------------


def test_a_job_round_trips_with_its_transports_typed_state() -> None:
    cases = [
        (Transport.LINE, LineState(reply_token="tok", via="push", reply_unknown=True, resent=True, redelivery=True,
                                   fetch_profile=True, sent=True), [Question(1, 0)]),
        (Transport.LINEBATCH, LineBatchState(["U1", "U2"], "2026-Q2"), [Reminder("A")]),
        (Transport.SLACK, SlackState(dm="D1", step=1, post_unknown=True, lead="line:U1:1-1"),
         [{"type": "slack_post", "text": "t", "blocks": []}, {"type": "slack_chart", "kind": "radar"}]),
        (Transport.SLACK, SlackState(step=1, fallback=0),  # a refused chart, sent as its image instead
         [{"type": "slack_post", "text": "t", "blocks": [{"type": "table", "rows": []}],
           "fallback": [{"type": "slack_chart", "kind": "lines"}]}]),
        (Transport.WEB, NoState(), [Greeting(), Result(1, "A" * 10)]),
    ]
    for transport, state, said in cases:
        job = Job.new(transport, "to", TAG, said, 12.5, state=state, content="abc", job_id="j1")
        again = Job.from_json(job.to_json())
        assert again == job and type(again.state) is type(state)
        assert again.transport is transport and again.content == "abc" and again.legacy_figures is None


def test_a_job_refuses_a_state_of_another_transport_and_an_unknown_transport() -> None:
    with pytest.raises(InvalidInput):
        Job.new(Transport.LINE, "to", TAG, [Greeting()], 1.0, state=SlackState())
    with pytest.raises(InvalidInput):
        Job.new("stats", "to", TAG, [], 1.0)
    job = Job.new("line", "to", TAG, [Greeting()], 1.0)
    assert job.transport is Transport.LINE and job.line == LineState()
    with pytest.raises(InvalidInput):
        _ = job.slack


def first_shape(**fields: Any) -> str:
    """A job as jobs were stored before this shape: channel, free state and meta dicts, dict outputs."""
    job = {"id": "m-1", "channel": "line", "to": USER, "tag": TAG, "outputs": [{"type": "question", "sid": 1, "q": 0}],
           "received": 100.0, "attempts": 2, "state": {}, "meta": {}, "error": "push: HTTP 500", "parked": ""}
    return json.dumps(job | fields)


def test_a_job_of_the_first_shape_is_read_as_it_was() -> None:
    stats = {"at": 100.0, "lead": {"id": f"line:{USER}:1-186a0"}}
    job = Job.from_json(first_shape(state={"reply_token": "tok", "via": "push", "reply_unknown": True,
                                           "fetch_profile": True}, meta={"stats": stats}))
    assert (job.id, job.transport, job.to, job.tag, job.received, job.attempts, job.error) == (
        "m-1", Transport.LINE, USER, TAG, 100.0, 2, "push: HTTP 500")
    assert job.outputs == [Question(1, 0)] and job.content == ""  # rendered with the worker's own script
    assert job.state == LineState(reply_token="tok", via="push", reply_unknown=True, fetch_profile=True)
    assert job.legacy_figures == stats
    again = Job.from_json(job.to_json())  # a worker stores it again (a retry) in today's shape: nothing lost
    assert again == job and json.loads(job.to_json())["v"] == 2


def test_a_multicast_and_a_slack_job_of_the_first_shape_keep_their_meta_and_state() -> None:
    batch = Job.from_json(first_shape(channel="linebatch", tag="u:linebatch:b1", outputs=[{"type": "reminder",
                                                                                           "tier": "C"}],
                                      meta={"rcpt": ["U1", "U2"], "period": "2026-Q2"}))
    assert batch.state == LineBatchState(["U1", "U2"], "2026-Q2") and batch.outputs == [Reminder("C")]
    post = {"type": "slack_post", "text": "t", "blocks": []}
    slack = Job.from_json(first_shape(channel="slack", tag="op:C1", outputs=[post, post],
                                      state={"dm": "D1", "step": 1, "post_unknown": True}, meta={"lead": "l1"}))
    assert slack.state == SlackState(dm="D1", step=1, post_unknown=True, lead="l1") and slack.outputs == [post, post]
    assert not slack.slack.fell_back and "fallback" not in slack.slack.to_json()  # none before it existed


def test_a_figures_only_job_of_the_first_shape_belongs_to_its_users_transport_and_says_nothing() -> None:
    job = Job.from_json(first_shape(channel="stats", outputs=[], meta={"stats": {"at": 1.0, "follow": 0}}))
    assert (job.transport, job.outputs, job.legacy_figures) == (Transport.LINE, [], {"at": 1.0, "follow": 0})


@pytest.mark.parametrize("raw", ["{}", "[]", "not json", first_shape(channel="fax"), first_shape(outputs=[{"type":
                                 "question"}]), json.dumps({"v": 2, "id": "x", "transport": "line"})])
def test_a_record_that_is_not_a_job_is_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        Job.from_json(raw)


def test_a_figures_record_round_trips_and_is_told_from_a_job_by_its_id() -> None:
    fig = Figures.new(TAG, {"at": 1.0, "follow": 1, "person": f"line:{USER}"})
    assert fig.id.startswith("f-") and fig.to == USER and fig.ref == f"{TAG}|{fig.id}"
    assert read(fig.id, fig.to_json()) == fig
    job = Job.new("line", USER, TAG, [Greeting()], 1.0)
    assert read(job.id, job.to_json()) == job
    with pytest.raises(InvalidInput):
        Figures.new(TAG, {}, record_id="m-1")


# ---- exhaustiveness -----------------------------------------------------------------------------------

NEW_KIND = '''

@dataclass(frozen=True)
class Sticker:
    kind: ClassVar[str] = "sticker"

    def to_json(self) -> dict[str, Any]:
        return {"type": self.kind}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Sticker:
        return cls()


Output: TypeAlias = Sticker | '''
RENDERERS = {("bot/views.py", "plain_text"), ("bot/views.py", "buttons_for"), ("bot/line/render.py", "message"),
             ("bot/webchat.py", "message"), ("bot/slack/blocks.py", "diagnosis_message"),
             ("bot/cli.py", "terminal_text")}


def _function_at(path: Path, line: int) -> str:
    """The name of the function a line of ``path`` is in."""
    for text in reversed(path.read_text().splitlines()[:line]):
        if text.lstrip().startswith("def "):
            return text.split("def ", 1)[1].split("(", 1)[0]
    return ""


def test_a_new_output_kind_fails_the_type_check_until_every_channel_renders_it(tmp_path: Path) -> None:
    """The project copied, one kind added to the union (a Sticker no renderer knows): mypy, with the
    project's settings, refuses exactly the six renderers' ``assert_never``. (The project's mypy cache is
    copied when there is one, so the check takes seconds.)"""
    for part in ("bot", "conversations", "scoring"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if (ROOT / ".mypy_cache").is_dir():
        shutil.copytree(ROOT / ".mypy_cache", tmp_path / ".mypy_cache")
    target = tmp_path / "conversations" / "outputs.py"
    source = target.read_text()
    assert source.count("\nOutput: TypeAlias = (") == 1
    target.write_text(source.replace("\n\nOutput: TypeAlias = (", NEW_KIND + "(", 1))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPY")}
    done = subprocess.run([sys.executable, "-m", "mypy", "bot", "conversations", "scoring"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    errors = [line for line in done.stdout.splitlines() if ": error: " in line]
    assert done.returncode == 1, done.stdout + done.stderr
    assert all('"assert_never" has incompatible type "Sticker"' in e for e in errors), errors
    found = {(path, _function_at(tmp_path / path, int(line))) for path, line, *_ in (e.split(":", 2) for e in errors)}
    assert found == RENDERERS and len(errors) == len(RENDERERS), errors
