"""How close the next tier is, and a retake compared with the result before it."""

from __future__ import annotations

import pytest

from scoring import NextTier, compare, next_tier

pytestmark = pytest.mark.fast  # unit tests: no Redis, no process, no server (tests/conftest.py)


@pytest.mark.parametrize(
    ("a_count", "expected"),
    [
        (0, NextTier("B", 7)),
        (6, NextTier("B", 1)),
        (7, NextTier("A", 2)),
        (8, NextTier("A", 1)),
        (9, None),
        (10, None),
    ],
)
def test_next_tier_names_the_tier_above_and_the_a_answers_missing(a_count: int, expected: NextTier | None) -> None:
    assert next_tier(a_count) == expected


@pytest.mark.parametrize("bad", [-1, 11, True, 1.0, "7"])
def test_next_tier_refuses_what_is_not_a_count(bad: object) -> None:
    with pytest.raises(ValueError):
        next_tier(bad)  # type: ignore[arg-type]


def test_compare_lists_the_questions_that_moved_and_the_old_point() -> None:
    c = compare("AACAAADAAB", "AAAAAAABAB")
    assert (c.before.tier, c.before.a_count, c.after.tier, c.after.a_count) == ("B", 7, "B", 8)
    assert c.moved == ((2, "C", "A"), (6, "D", "A"), (7, "A", "B"))
    assert c.a_change == 1
    assert c.point_before == 6 and c.point_now == "A" and c.point_fixed


def test_compare_when_the_old_point_is_still_weak() -> None:
    c = compare("DAAAAAAAAA", "CAAAAAAAAB")
    assert c.point_before == 0 and c.point_now == "C" and not c.point_fixed
    assert c.moved == ((0, "D", "C"), (9, "A", "B"))
    assert c.a_change == -1


def test_compare_from_all_a_has_no_old_point() -> None:
    c = compare("AAAAAAAAAA", "AAAAAAAAAA")
    assert c.moved == () and c.point_before is None and c.point_now is None and not c.point_fixed
    assert c.a_change == 0


def test_compare_refuses_invalid_answers() -> None:
    with pytest.raises(ValueError):
        compare("AAAA", "AAAAAAAAAA")
