"""「LTVとは」 mid-diagnosis on LINE: the definition, then the same question again; the 用語 button lists the
question's terms; an unknown term gets the usual hint."""

from __future__ import annotations

from tests.bot.line.conftest import LineEnv
from tests.bot.line.helpers import last_quick_reply_data


def test_a_term_mid_diagnosis_is_defined_and_the_question_shown_again(line_env: LineEnv) -> None:
    env, script = line_env, line_env.svc.script
    user = env.user()
    user.follow()
    env.settle()
    user.tap("s")
    env.settle()
    user.tap(next(d for d in last_quick_reply_data(env.fake.delivered(user.user_id)) if d.endswith(":B")))
    env.settle()
    q2 = env.fake.delivered(user.user_id)[-1]
    assert q2["text"].startswith("Q2/10")
    user.say("LTVとは？")
    env.settle()
    definition, again = env.fake.delivered(user.user_id)[-2:]
    assert definition["text"] == f"LTV：{script.glossary.terms['LTV'].text}"
    assert again["text"] == q2["text"] and last_quick_reply_data([again]) == last_quick_reply_data([q2])
    assert "g:1" in last_quick_reply_data([again])
    user.tap("g:1")
    env.settle()
    listing, again = env.fake.delivered(user.user_id)[-2:]
    for term in script.glossary.of_question(1):
        assert term.text in listing["text"]
    assert again["text"] == q2["text"]
    user.say("ほげほげとは")
    env.settle()
    hint, again = env.fake.delivered(user.user_id)[-2:]
    assert hint["text"] == script.text("hint") and again["text"] == q2["text"]
    user.tap(next(d for d in last_quick_reply_data([again]) if d.endswith(":A")))
    env.settle()
    assert env.fake.delivered(user.user_id)[-1]["text"].startswith("Q3/10")  # the place was kept
