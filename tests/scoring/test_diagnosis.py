"""Tests for scoring.diagnosis: tiers, the next-point rule, input validation and the result shape."""

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scoring
from scoring import (
    CHOICES,
    QUESTION_COUNT,
    TIERS,
    DiagnosisResult,
    QuestionScore,
    diagnosis,
    next_point,
    parse_answers,
    score,
    tier_for,
)

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)

ALL_A = "A" * QUESTION_COUNT


def with_a_count(n: int, filler: str = "B") -> str:
    """n A answers followed by filler answers, ten in all."""
    return "A" * n + filler * (QUESTION_COUNT - n)


# --- constants and exports ----------------------------------------------------------------------


def test_the_constants_are_what_scoring_accepts_and_gives() -> None:
    for letter in CHOICES:  # every choice is an answer, counted as such
        assert score(letter * QUESTION_COUNT).counts[letter] == QUESTION_COUNT
    with pytest.raises(ValueError, match=f"expected {QUESTION_COUNT} answers"):
        score("A" * (QUESTION_COUNT + 1))
    assert {tier_for(n) for n in range(QUESTION_COUNT + 1)} == set(TIERS)  # every tier reachable, no other
    assert (tier_for(QUESTION_COUNT), tier_for(0)) == (TIERS[0], TIERS[-1])  # listed best first


def test_package_reexports_the_public_api() -> None:
    assert sorted(scoring.__all__) == sorted(diagnosis.__all__)
    for name in diagnosis.__all__:
        assert getattr(scoring, name) is getattr(diagnosis, name)


# --- tier_for -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a_count", "tier"),
    [(10, "A"), (9, "A"), (8, "B"), (7, "B"), (6, "C"), (5, "C"), (1, "C"), (0, "C")],
)
def test_tier_for_edges(a_count: int, tier: str) -> None:
    assert tier_for(a_count) == tier


@pytest.mark.parametrize("bad", [-1, 11, 100])
def test_tier_for_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match=r"between 0 and 10"):
        tier_for(bad)


@pytest.mark.parametrize("bad", [True, False, 2.0, 9.0, "9", None])
def test_tier_for_rejects_non_int(bad: object) -> None:
    with pytest.raises(ValueError, match=r"must be an int"):
        tier_for(bad)  # type: ignore[arg-type]


# --- score: tiers through the whole pipeline ----------------------------------------------------


@pytest.mark.parametrize(("a_count", "tier"), [(10, "A"), (9, "A"), (8, "B"), (7, "B"), (6, "C"), (0, "C")])
@pytest.mark.parametrize("filler", ["B", "C", "D"])
def test_score_tier_edges(a_count: int, tier: str, filler: str) -> None:
    result = score(with_a_count(a_count, filler))
    assert result.a_count == a_count
    assert result.tier == tier


def test_score_a_count_ignores_position_and_other_letters() -> None:
    # Nine A's spread out with one D in the middle is still A評価.
    result = score("AAAADAAAAA")
    assert result.a_count == 9
    assert result.tier == "A"
    # Only A's count: seven B's and three A's is C評価, not "better than" all D's.
    assert score("BBBBBBBAAA").tier == "C"
    assert score("DDDDDDDDDD").tier == "C"


# --- next_point ---------------------------------------------------------------------------------


def test_next_point_all_a_is_none() -> None:
    assert next_point(ALL_A) is None
    assert score(ALL_A).next_point is None


@pytest.mark.parametrize("index", range(QUESTION_COUNT))
def test_next_point_single_d_among_a(index: int) -> None:
    answers = ALL_A[:index] + "D" + ALL_A[index + 1 :]
    assert next_point(answers) == index
    assert score(answers).next_point == index


def test_next_point_d_beats_earlier_c() -> None:
    assert next_point("ACAAADAAAA") == 5
    assert next_point("CCCCCCCCCD") == 9


def test_next_point_c_beats_earlier_b() -> None:
    assert next_point("BBBCAAAAAA") == 3


def test_next_point_ties_go_to_the_earliest_question() -> None:
    assert next_point("ADAADAAAAD") == 1
    assert next_point("AACACAAAAA") == 2
    assert next_point("DDDDDDDDDD") == 0


def test_next_point_b_only() -> None:
    assert next_point("AAAAAAABAA") == 7
    assert next_point("AAAAABABAB") == 5
    assert next_point("BBBBBBBBBB") == 0


def test_next_point_accepts_a_sequence() -> None:
    assert next_point(list("AAAAAAACAA")) == 7


def test_next_point_validates_input() -> None:
    with pytest.raises(ValueError, match=r"expected 10 answers, got 3"):
        next_point("ABC")


# --- score / parse_answers input --------------------------------------------------------------


def test_score_accepts_string_list_and_tuple_alike() -> None:
    text = "ABCDABCDAB"
    from_text = score(text)
    assert from_text.answers == text
    assert score(list(text)) == from_text
    assert score(tuple(text)) == from_text


def test_parse_answers_returns_the_letters() -> None:
    assert parse_answers("ABCDABCDAB") == "ABCDABCDAB"
    assert parse_answers(["D"] * 10) == "DDDDDDDDDD"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("A" * 9, r"expected 10 answers, got 9"),
        ("A" * 11, r"expected 10 answers, got 11"),
        ("", r"expected 10 answers, got 0"),
        (["A"] * 9, r"expected 10 answers, got 9"),
        (["A"] * 11, r"expected 10 answers, got 11"),
    ],
)
def test_score_rejects_wrong_length(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("aAAAAAAAAA", r"index 0 \(question 1\).*got 'a'"),
        ("AAAAAAAAAa", r"index 9 \(question 10\).*got 'a'"),
        ("AAAEAAAAAA", r"index 3 \(question 4\).*got 'E'"),
        ("AAAA AAAAA", r"index 4 \(question 5\).*got ' '"),
        ("AAAAＡAAAAA", r"index 4 \(question 5\).*got 'Ａ'"),  # full-width A: normalised elsewhere
        (["A"] * 9 + ["e"], r"index 9 \(question 10\).*got 'e'"),
        (["A"] * 9 + ["AB"], r"index 9 \(question 10\).*got 'AB'"),
        (["A"] * 9 + [""], r"index 9 \(question 10\).*got ''"),
    ],
)
def test_score_rejects_other_letters(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([1] + ["A"] * 9, r"index 0 \(question 1\).*got 1"),
        (["A"] * 5 + [None] + ["A"] * 4, r"index 5 \(question 6\).*got None"),
        (["A"] * 9 + [b"A"], r"index 9 \(question 10\).*got b'A'"),
    ],
)
def test_score_rejects_non_string_items(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        score(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad", [None, 10, b"AAAAAAAAAA", bytearray(b"AAAAAAAAAA"), {"A": 10}, iter("AAAAAAAAAA")]
)
def test_score_rejects_non_sequences(bad: object) -> None:
    with pytest.raises(ValueError, match=r"must be a string or a sequence of 10 letters"):
        score(bad)  # type: ignore[arg-type]


# --- the result ---------------------------------------------------------------------------------


def test_score_result_fields() -> None:
    result = score("ABCDABCDAB")
    assert result.answers == "ABCDABCDAB"
    assert result.a_count == 3
    assert result.tier == "C"
    assert dict(result.counts) == {"A": 3, "B": 3, "C": 2, "D": 2}
    assert result.next_point == 3
    assert result.breakdown[3] == QuestionScore(index=3, answer="D", is_a=False, rank=3)


def test_counts_include_zeros_in_choice_order() -> None:
    counts = score(ALL_A).counts
    assert list(counts) == list(CHOICES)
    assert dict(counts) == {"A": 10, "B": 0, "C": 0, "D": 0}


@pytest.mark.parametrize("answers", [ALL_A, "DDDDDDDDDD", "ABCDABCDAB", "BBCCBBCCBB", "AAAAAAAAAD"])
def test_counts_always_sum_to_ten(answers: str) -> None:
    counts = score(answers).counts
    assert sum(counts.values()) == QUESTION_COUNT
    assert counts["A"] == score(answers).a_count


def test_counts_are_read_only() -> None:
    result = score(ALL_A)
    with pytest.raises(TypeError):
        result.counts["A"] = 0  # type: ignore[index]
    assert result.counts["A"] == 10


def test_breakdown_covers_every_question() -> None:
    result = score("ABCDDCBAAB")
    assert result.breakdown == (
        QuestionScore(0, "A", True, 0),
        QuestionScore(1, "B", False, 1),
        QuestionScore(2, "C", False, 2),
        QuestionScore(3, "D", False, 3),
        QuestionScore(4, "D", False, 3),
        QuestionScore(5, "C", False, 2),
        QuestionScore(6, "B", False, 1),
        QuestionScore(7, "A", True, 0),
        QuestionScore(8, "A", True, 0),
        QuestionScore(9, "B", False, 1),
    )


def test_result_is_frozen() -> None:
    result = score(ALL_A)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.tier = "C"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.breakdown[0].answer = "D"  # type: ignore[misc]
    assert result.tier == "A"


def test_result_is_hashable_and_equal_by_value() -> None:
    first, second, other = score("ABCDABCDAB"), score(list("ABCDABCDAB")), score("DCBADCBADC")
    assert first == second
    assert hash(first) == hash(second)
    assert first != other
    assert len({first, second, other}) == 2
    assert isinstance(first, DiagnosisResult)


# --- properties over every possible answer string -----------------------------------------------


@given(st.text(alphabet="ABCD", min_size=QUESTION_COUNT, max_size=QUESTION_COUNT))
def test_properties_of_any_answers(answers: str) -> None:
    result = score(answers)
    a_count = answers.count("A")

    assert result.answers == answers
    assert result.a_count == a_count
    expected_tier = "A" if a_count >= 9 else "B" if a_count >= 7 else "C"
    assert result.tier == expected_tier == tier_for(a_count)

    assert sum(result.counts.values()) == QUESTION_COUNT
    assert all(result.counts[letter] == answers.count(letter) for letter in CHOICES)
    assert [q.answer for q in result.breakdown] == list(answers)
    assert [q.index for q in result.breakdown] == list(range(QUESTION_COUNT))

    assert (result.next_point is None) == (answers == ALL_A)
    assert result.next_point == next_point(answers)
    if result.next_point is not None:
        weakest = max(answers, key=CHOICES.index)
        assert answers[result.next_point] == weakest
        # ...and it is the first question with that weakest answer.
        assert answers.index(weakest) == result.next_point
