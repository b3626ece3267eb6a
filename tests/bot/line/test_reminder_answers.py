"""The quarterly reminder's question answered on LINE: has last time's point to fix moved?
「はい」 and 「まだ」 are thanked and recorded on the lead of the result they are about; 「まだ」 brings that
point's advice again; 「相談する」 is the consultation as from the result card. The place is kept."""

from __future__ import annotations

from conversations.analytics import Analytics
from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import texts
from tests.bot.line.test_webhook import take

ANSWERS = "AADAAAAABA"  # B評価; the point to fix is Q3 (D)


def replies_after(env: LineEnv, user_id: str, before: int) -> list[str]:
    return texts(env.fake.delivered(user_id)[before:])


def test_yes_is_thanked_and_recorded_on_the_last_result(line_env: LineEnv) -> None:
    user = line_env.user()
    take(line_env, user, ANSWERS)
    before = len(line_env.fake.delivered(user.user_id))
    line_env.clock.advance(90 * 86400)
    user.tap("m:1")
    line_env.settle()
    assert replies_after(line_env, user.user_id, before) == [line_env.svc.script.text("moved_yes")]
    [lead] = Analytics(line_env.r, clock=line_env.clock).person("line", user.user_id)
    assert lead.moved is True and lead.moved_at == line_env.clock() and lead.is_finished


def test_not_yet_brings_the_points_advice_again_and_a_later_answer_replaces_it(line_env: LineEnv) -> None:
    script = line_env.svc.script
    user = line_env.user()
    take(line_env, user, ANSWERS)
    before = len(line_env.fake.delivered(user.user_id))
    user.tap("m:0")
    line_env.settle()
    said = replies_after(line_env, user.user_id, before)
    assert said[0] == script.text("moved_no")
    assert said[1].startswith(script.text("advice_title", number=3, topic=script.questions[2].topic, letter="D"))
    stats = Analytics(line_env.r, clock=line_env.clock)
    assert stats.person("line", user.user_id)[0].moved is False
    line_env.clock.advance(60)
    user.tap("m:1")
    line_env.settle()
    assert stats.person("line", user.user_id)[0].moved is True


def test_an_answer_mid_diagnosis_keeps_the_open_question(line_env: LineEnv) -> None:
    script = line_env.svc.script
    user = line_env.user()
    take(line_env, user, ANSWERS)
    user.say("診断")  # a retake under way, at Q1
    line_env.settle()
    before = len(line_env.fake.delivered(user.user_id))
    user.tap("m:1")
    line_env.settle()
    said = replies_after(line_env, user.user_id, before)
    assert said[0] == script.text("moved_yes") and said[-1].startswith(script.text("question", number=1, total=10,
                                                                                   text=script.questions[0].text))
    # the answer is about the finished result, not the diagnosis under way: nothing put on the new lead
    leads = Analytics(line_env.r, clock=line_env.clock).person("line", user.user_id)
    assert [lead.moved for lead in leads] == [None, None]


def test_consult_from_the_reminder_is_the_consultation(line_env: LineEnv) -> None:
    user = line_env.user()
    take(line_env, user, ANSWERS)
    before = len(line_env.fake.delivered(user.user_id))
    user.tap("k:0")  # the reminder's button: one multicast, no diagnosis number
    line_env.settle()
    assert replies_after(line_env, user.user_id, before)[0] == line_env.svc.script.text("consult_ack")
    [lead] = Analytics(line_env.r, clock=line_env.clock).person("line", user.user_id)
    assert lead.consult == "new"
