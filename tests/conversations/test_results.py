"""conversations.results: nothing in a result contradicts an answer; the 90-day plan; the content check of
the tier sentences that makes the first possible."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from conversations import results
from conversations.content import STEP_MAX, Script, Sentence, load_script
from scoring import CHOICES, QUESTION_COUNT, score
from tests.conversations.test_content import real_data, refused, write

pytestmark = pytest.mark.fast

LOCALES = ("ja", "en")


def patterns() -> list[str]:
    """Every one of the 2^10 patterns of A / not-A, the not-A letters varied: the k-th not-A answer of a
    pattern is B, C or D in turn, starting from a letter that moves with the pattern's number, so every
    question meets every weak letter across the patterns."""
    found = []
    for n, is_a in enumerate(itertools.product((True, False), repeat=QUESTION_COUNT)):
        letters, k = [], n
        for a in is_a:
            if a:
                letters.append("A")
            else:
                letters.append("BCD"[k % 3])
                k += 1
        found.append("".join(letters))
    return found


def contradicted(s: Sentence, answers: str) -> list[int]:
    """The questions (1-based) whose answer this sentence contradicts."""
    return ([n for n in s.about if answers[n - 1] == "A"]
            + [n for n in s.assumes if answers[n - 1] != "A"])


def test_the_patterns_cover_every_a_pattern_and_every_weak_letter_at_every_question() -> None:
    ps = patterns()
    assert len(set(ps)) == len(ps) == 2 ** QUESTION_COUNT
    assert {tuple(x == "A" for x in p) for p in ps} == set(itertools.product((True, False), repeat=QUESTION_COUNT))
    for q in range(QUESTION_COUNT):
        assert {p[q] for p in ps} == set(CHOICES)


@pytest.mark.parametrize("locale", LOCALES)
def test_no_shown_sentence_contradicts_an_answer_in_any_of_the_2_to_the_10_patterns(locale: str) -> None:
    script = load_script(locale)
    for answers in patterns():
        built = results.build(script, answers)
        tier = script.tiers[built.result.tier]
        for part, sentences, shown in (("summary", tier.summary_sentences, built.summary),
                                       ("next_theme", tier.theme_sentences, built.theme)):
            by_text = {s.text: s for s in sentences}
            assert shown, (answers, part)  # never empty
            for text in shown:
                assert text in by_text, (answers, text)  # only the file's own sentences, whole
                assert not contradicted(by_text[text], answers), (answers, part, text)
            # and every sentence that holds is shown, in the file's order
            assert list(shown) == [s.text for s in sentences if not contradicted(s, answers)]
        _well_formed(script, answers, built)


def _well_formed(script: Script, answers: str, built: results.Built) -> None:
    res = built.result
    assert res == score(answers)
    weak = [i for i, x in enumerate(answers) if x != "A"]
    if len(weak) < results.PLAN_MIN:
        assert built.plan == ()
        return
    assert [p.when for p in built.plan] == list(results.PLAN_SLOTS[:len(built.plan)])
    assert len(built.plan) == min(3, len(weak))
    assert built.plan[0].q == res.next_point  # the plan starts with the point to fix
    qs = [p.q for p in built.plan]
    assert len(set(qs)) == len(qs) and all(answers[q] != "A" for q in qs)
    for p in built.plan:
        assert p.letter == answers[p.q]
        question = script.questions[p.q]
        assert p.text == (question.step_b if p.letter == "B" else question.step_cd)
    # weakest first, the earlier question among equals; nothing left out is weaker than what was picked
    ranks = [(-CHOICES.index(answers[q]), q) for q in qs]
    assert ranks == sorted(ranks)
    left = [(-CHOICES.index(answers[q]), q) for q in weak if q not in qs]
    assert all(r > ranks[-1] for r in left)


def test_the_plan_takes_the_weakest_first_and_the_earlier_question_among_equals() -> None:
    script = load_script("ja")
    plan = results.build(script, "BACADCAAAB").plan
    assert [(p.when, p.q, p.letter) for p in plan] == [
        ("plan_month", 4, "D"), ("plan_next_month", 2, "C"), ("plan_quarter", 5, "C")]
    assert [p.q for p in results.build(script, "ABAAAAAABA").plan] == [1, 8]  # two weak answers: two steps
    assert results.build(script, "AAAAAAAAAD").plan == ()  # one weak answer: the point to fix is the plan
    assert results.build(script, "AAAAAAAAAA").plan == ()


def test_a_contradicting_sentence_is_left_out_and_its_neighbours_stay() -> None:
    """The review's cases: the B summary's missing follow-up to someone whose Q4 is A; the C summary's
    campaigns to someone whose Q8 is A; the A summary's LTV-first decisions to someone whose Q1 is B."""
    script = load_script("ja")
    follow_up = next(s for s in script.tiers["B"].summary_sentences if s.about == {4})
    assert follow_up.text not in results.build(script, "AAAAAAABCD").summary  # Q4 = A
    assert follow_up.text in results.build(script, "AAABAAAACA").summary  # Q4 = B
    campaigns = next(s for s in script.tiers["C"].summary_sentences if 8 in s.about)
    assert campaigns.text not in results.build(script, "DDDDDDDADD").summary
    assert campaigns.text in results.build(script, "DDDDDDDCDD").summary
    ltv = next(s for s in script.tiers["A"].summary_sentences if s.assumes == {1})
    assert ltv.text not in results.build(script, "BAAAAAAAAA").summary
    assert ltv.text in results.build(script, "AAAAAAAAAA").summary


@pytest.mark.parametrize("locale", LOCALES)
def test_every_question_has_a_short_step_at_each_level(locale: str) -> None:
    for q in load_script(locale).questions:
        for step in (q.step_b, q.step_cd):
            assert step.strip() and len(step) <= STEP_MAX and "\n" not in step
        assert q.step_b != q.step_cd


# --- the content check: a tier text without its questions is refused, naming file and field ----------


def _tier(data: dict[str, Any], t: str = "B") -> dict[str, Any]:
    tier: dict[str, Any] = data["tiers"][t]
    return tier


def test_a_tier_text_as_one_string_is_refused_with_how_to_write_it(tmp_path: Path) -> None:
    data = real_data()
    _tier(data)["summary"] = "CRMが動きはじめた段階です。"
    write(tmp_path, data)
    e = refused(tmp_path, "tiers.B.summary")
    assert "about" in e.problem and "[[tiers.B.summary]]" in e.problem


def test_a_sentence_without_about_is_refused(tmp_path: Path) -> None:
    data = real_data()
    del _tier(data, "C")["next_theme"][1]["about"]
    write(tmp_path, data)
    assert "missing" in refused(tmp_path, "tiers.C.next_theme[2].about").problem


@pytest.mark.parametrize(("value", "why"), [([0], "1-10"), ([11], "1-10"), (["3"], "1-10"), (3, "list"),
                                            ([3, 3], "twice"), ([True], "1-10")])
def test_about_must_name_questions_by_number(tmp_path: Path, value: Any, why: str) -> None:
    data = real_data()
    _tier(data)["summary"][2]["about"] = value
    write(tmp_path, data)
    assert why in refused(tmp_path, "tiers.B.summary[3].about").problem


def test_a_question_in_both_about_and_assumes_is_refused(tmp_path: Path) -> None:
    data = real_data()
    _tier(data)["summary"][2]["assumes"] = [3]
    write(tmp_path, data)
    assert "never show" in refused(tmp_path, "tiers.B.summary[3]").problem


def test_a_text_needs_a_sentence_that_always_shows(tmp_path: Path) -> None:
    data = real_data()
    for s in _tier(data, "A")["next_theme"]:
        s["about"] = [2]
    write(tmp_path, data)
    assert "every answer" in refused(tmp_path, "tiers.A.next_theme").problem


@pytest.mark.parametrize(("field", "change"), [
    ("tiers.B.next_theme", lambda t: t.__setitem__("next_theme", [])),
    ("tiers.B.summary[1].text", lambda t: t["summary"][0].__setitem__("text", "")),
    ("tiers.B.summary[1].why", lambda t: t["summary"][0].__setitem__("why", "x")),
])
def test_empty_texts_and_unknown_keys_are_refused(tmp_path: Path, field: str, change: Any) -> None:
    data = real_data()
    change(_tier(data))
    write(tmp_path, data)
    refused(tmp_path, field)


@pytest.mark.parametrize("key", ["step_b", "step_cd"])
def test_a_question_without_its_plan_step_is_refused(tmp_path: Path, key: str) -> None:
    data = real_data()
    del data["questions"][3][key]
    write(tmp_path, data)
    refused(tmp_path, f"questions[4].{key}")


# ---- peers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "total", "share"), [
    (0, 30, 0), (1, 30, 5), (5, 30, 15), (6, 30, 20), (29, 30, 95), (30, 30, 100),
    (1, 40, 5), (3, 40, 10), (9, 40, 25), (1, 41, 0), (1, 1000, 0), (25, 1000, 5),
])
def test_a_share_is_rounded_half_up_to_five_percent(count: int, total: int, share: int) -> None:
    assert results.rounded_share(count, total) == share
    assert share % results.PEER_STEP == 0


def test_peers_name_the_point_and_the_plan_from_thirty_finished_diagnoses() -> None:
    counts = results.PeerCounts(29, tuple(range(10)))
    answers = "AABACCDABA"  # weakest: Q7 (D), then Q5, Q6 (C)
    assert results.peer_shares(counts, answers, own=False) == ()  # 29: nothing yet
    assert results.peer_shares(counts, answers, own=True) == ((6, 20), (4, 15), (5, 15))  # 6/30, 4/30, 5/30
    assert results.peer_shares(results.PeerCounts(30, tuple(range(10))), answers, own=False) == (
        (6, 20), (4, 15), (5, 15))
    assert results.peer_shares(counts, "A" * 10, own=True) == ()  # ten A's: no point, no plan
    assert results.peer_shares(counts, "AAAAAAAAAB", own=True) == ((9, 30),)  # one point, no plan: the point
