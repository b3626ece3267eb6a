"""Scoring of the ten-question CRM maturity diagnosis (CRM診断).

Pure functions only: no I/O, no storage, no imports from the rest of the project.

The rules
---------
* The diagnosis has ``QUESTION_COUNT`` (10) questions. Each is answered with one of ``CHOICES``:
  ``"A"`` (done systematically, best), ``"B"`` (partly), ``"C"`` (aware but not done),
  ``"D"`` (not at all, weakest). The *rank* of a letter is its position in ``CHOICES``:
  A=0, B=1, C=2, D=3, so a higher rank is a weaker answer.
* Answers are given in question order, either as one string such as ``"ABCDABCDAB"`` or as a
  sequence of ten one-letter strings. Letters must be exactly upper-case ``A``-``D``; turning
  what a user typed or tapped into those letters is done elsewhere. Any other input (wrong
  length, other letters, lower case, non-string items, non-sequences) raises ``ValueError``.
* Only the number of A answers counts; there is no finer arithmetic. The tier (``TIERS``) is:

  ========  ===========
  A count   tier
  ========  ===========
  9-10      ``"A"`` (A評価)
  7-8       ``"B"`` (B評価)
  0-6       ``"C"`` (C評価)
  ========  ===========

* The diagnosis also names **the one point to fix next** (``next_point``), a 0-based question
  index chosen deterministically:

  1. the weakest answer wins (D is weaker than C, C weaker than B);
  2. among equally weak answers the earliest question wins, because the questions run from the
     foundations (annual LTV, customer tenure, second purchase) to refinements, so the earliest
     weak answer is the foundation to fix first;
  3. when every answer is A there is nothing to fix and the result is ``None``.

``DiagnosisResult.counts`` is a read-only mapping (``types.MappingProxyType``) holding every
letter A-D in that order, zeros included, so callers can write ``result.counts["D"]`` but cannot
change it. A mapping proxy is not hashable, so ``counts`` is excluded from the result's hash
(``field(hash=False)``); it is derived from ``answers``, which is hashed, so equal results still
have equal hashes and a ``DiagnosisResult`` can be used in sets and as a dict key.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CHOICES",
    "QUESTION_COUNT",
    "TIERS",
    "Comparison",
    "DiagnosisResult",
    "NextTier",
    "QuestionScore",
    "compare",
    "next_point",
    "next_tier",
    "parse_answers",
    "score",
    "tier_for",
]

QUESTION_COUNT = 10
CHOICES: tuple[str, ...] = ("A", "B", "C", "D")
TIERS: tuple[str, ...] = ("A", "B", "C")

# Lowest A count that earns tier "A" and tier "B"; anything lower is tier "C".
_TIER_A_MIN = 9
_TIER_B_MIN = 7
_RANK: Mapping[str, int] = MappingProxyType({letter: rank for rank, letter in enumerate(CHOICES)})


@dataclass(frozen=True)
class QuestionScore:
    """One answered question: 0-based ``index``, the ``answer`` letter, whether it is an A,
    and its ``rank`` (A=0, B=1, C=2, D=3; higher is weaker)."""

    index: int
    answer: str
    is_a: bool
    rank: int


@dataclass(frozen=True)
class DiagnosisResult:
    """The scored diagnosis. Build it with :func:`score`.

    ``answers`` holds the ten letters in question order, ``a_count`` the number of A answers,
    ``tier`` the tier from :func:`tier_for`, ``counts`` a read-only mapping of every letter A-D to
    its count (zeros included, excluded from hashing), ``breakdown`` one :class:`QuestionScore`
    per question and ``next_point`` the 0-based index of the question to fix next (``None`` only
    when all ten answers are A).
    """

    answers: str
    a_count: int
    tier: str
    counts: Mapping[str, int] = field(hash=False)
    breakdown: tuple[QuestionScore, ...]
    next_point: int | None


def tier_for(a_count: int) -> str:
    """Return the tier for a number of A answers: 9-10 -> "A", 7-8 -> "B", 0-6 -> "C".

    Raises ``ValueError`` for a bool, a non-int or an int outside 0..QUESTION_COUNT.
    """
    if isinstance(a_count, bool) or not isinstance(a_count, int):
        raise ValueError(f"a_count must be an int, got {type(a_count).__name__} {a_count!r}")
    if not 0 <= a_count <= QUESTION_COUNT:
        raise ValueError(f"a_count must be between 0 and {QUESTION_COUNT}, got {a_count}")
    if a_count >= _TIER_A_MIN:
        return "A"
    if a_count >= _TIER_B_MIN:
        return "B"
    return "C"


def parse_answers(value: object) -> str:
    """Validate diagnosis answers and return them as one string of ten letters A-D.

    ``value`` is either a string such as ``"ABCDABCDAB"`` or a sequence of ten one-letter
    strings. Letters must be upper-case A-D exactly. Anything else raises ``ValueError``.
    """
    if isinstance(value, str):
        items: Sequence[object] = value
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        items = value
    else:
        raise ValueError(
            f"answers must be a string or a sequence of {QUESTION_COUNT} letters, got {type(value).__name__}"
        )
    if len(items) != QUESTION_COUNT:
        raise ValueError(f"expected {QUESTION_COUNT} answers, got {len(items)}")
    letters: list[str] = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or item not in _RANK:
            raise ValueError(
                f"answer at index {index} (question {index + 1}) must be one of "
                f"{', '.join(CHOICES)} (upper case), got {item!r}"
            )
        letters.append(item)
    return "".join(letters)


def _next_point_of(letters: str) -> int | None:
    """The next-point rule on already validated letters."""
    ranks = [_RANK[letter] for letter in letters]
    weakest = max(ranks)
    if weakest == _RANK["A"]:
        return None
    return ranks.index(weakest)


def next_point(answers: str | Sequence[str]) -> int | None:
    """Return the 0-based index of the one question to fix next.

    The weakest answer wins (D over C over B); among equally weak answers the earliest question
    wins. Returns ``None`` when every answer is A. Raises ``ValueError`` for invalid answers
    (see :func:`parse_answers`).
    """
    return _next_point_of(parse_answers(answers))


def score(answers: str | Sequence[str]) -> DiagnosisResult:
    """Score ten diagnosis answers (a string or a sequence of one-letter strings, A-D).

    Raises ``ValueError`` for invalid answers (see :func:`parse_answers`).
    """
    letters = parse_answers(answers)
    a_count = letters.count("A")
    return DiagnosisResult(
        answers=letters,
        a_count=a_count,
        tier=tier_for(a_count),
        counts=MappingProxyType({letter: letters.count(letter) for letter in CHOICES}),
        breakdown=tuple(
            QuestionScore(index=index, answer=letter, is_a=letter == "A", rank=_RANK[letter])
            for index, letter in enumerate(letters)
        ),
        next_point=_next_point_of(letters),
    )


@dataclass(frozen=True)
class NextTier:
    """How close the next tier is: ``tier`` is the next one up, ``missing`` the A answers still needed."""

    tier: str
    missing: int


def next_tier(a_count: int) -> NextTier | None:
    """The next tier up from ``a_count`` A answers and how many more A answers reach it.

    ``None`` at tier "A" (nothing above it). Raises ``ValueError`` like :func:`tier_for`.
    """
    tier = tier_for(a_count)
    if tier == "A":
        return None
    target = _TIER_A_MIN if tier == "B" else _TIER_B_MIN
    return NextTier(tier=TIERS[TIERS.index(tier) - 1], missing=target - a_count)


@dataclass(frozen=True)
class Comparison:
    """A retake against the result before it.

    ``moved`` lists the questions whose answer changed as (0-based index, before, after) in question
    order; ``point_before`` is the previous result's point to fix (``None`` when it was all A) and
    ``point_now`` the answer given to that question this time (``None`` likewise).
    """

    before: DiagnosisResult
    after: DiagnosisResult
    moved: tuple[tuple[int, str, str], ...]
    point_before: int | None
    point_now: str | None

    @property
    def a_change(self) -> int:
        return self.after.a_count - self.before.a_count

    @property
    def point_fixed(self) -> bool:
        """Last time's point to fix is now answered A (False when there was none)."""
        return self.point_now == "A"


def compare(before: str | Sequence[str], after: str | Sequence[str]) -> Comparison:
    """Compare two diagnoses of one person (the earlier first). Raises ``ValueError`` for invalid answers."""
    b, a = score(before), score(after)
    moved = tuple((i, x, y) for i, (x, y) in enumerate(zip(b.answers, a.answers, strict=True)) if x != y)
    point = b.next_point
    return Comparison(
        before=b,
        after=a,
        moved=moved,
        point_before=point,
        point_now=None if point is None else a.answers[point],
    )
