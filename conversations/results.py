"""What a result says to one owner, built from their ten answers and the script: pure, no I/O.

Every channel draws the same parts (``bot/views.py`` turns them into words and buttons):

* the tier's **summary** and **next theme**, assembled from the script's sentences
  (:class:`conversations.content.Sentence`): a sentence is left out when the owner's answers contradict it
  (it names a practice as missing that they answered A, or as in place that they did not), so nothing in a
  result contradicts an answer (tests/conversations/test_results.py runs all 2^10 A / not-A patterns);
* **the one point to fix** (``scoring.next_point``: the weakest answer, the earliest question among equals);
* **a 90-day plan** from the two or three weakest answers (:func:`plan_of`): this month, next month, this
  quarter, each one short step (the question's ``step_b`` or ``step_cd``) at the owner's level. The weakest
  answer comes first (D before C before B); among equals the earlier question, because the questions run
  from the foundations (annual LTV, tenure, second purchase) to refinements, as for the point to fix. So the
  plan's first step is the point to fix. With fewer than two answers below A there is no plan: the point
  alone is the plan;
* **peers** (:func:`peer_shares`): once at least :data:`PEER_MIN` diagnoses have finished (test users left
  out), the share of shops that answered A to the point to fix and to each of the plan's questions, rounded
  to :data:`PEER_STEP` % so that no share points to one shop. The counts (:class:`PeerCounts`) are read by
  the core from the operator's figures (``conversations.analytics.PeerFigures``) and kept in the
  :class:`conversations.outputs.Result`, so a result says what it said when it was committed.
"""

from __future__ import annotations

from dataclasses import dataclass

from conversations.content import Script, Sentence
from scoring import QUESTION_COUNT, DiagnosisResult, score

PLAN_SLOTS = ("plan_month", "plan_next_month", "plan_quarter")  # the text keys naming each step's time
PLAN_MIN = 2  # fewer weak answers than this: the point to fix is the whole plan
PEER_MIN = 30  # finished diagnoses (tests left out) before a result says how other shops answered
PEER_STEP = 5  # a share is rounded to this many percent


@dataclass(frozen=True)
class PlanStep:
    when: str  # a text key of PLAN_SLOTS
    q: int  # 0-based question
    letter: str  # the owner's answer (B-D)
    text: str  # the step at that answer's level


@dataclass(frozen=True)
class Built:
    result: DiagnosisResult
    summary: tuple[str, ...]  # the tier's sentences that hold for these answers, in the script's order
    theme: tuple[str, ...]
    plan: tuple[PlanStep, ...]  # () when fewer than PLAN_MIN answers are below A


def holding(sentences: tuple[Sentence, ...], answers: str) -> tuple[str, ...]:
    """The texts of the sentences that nothing in ``answers`` contradicts."""
    return tuple(s.text for s in sentences if s.holds_for(answers))


def weakest(result: DiagnosisResult, limit: int = len(PLAN_SLOTS)) -> tuple[int, ...]:
    """The 0-based questions answered below A, weakest first (earliest among equals), at most ``limit``."""
    below = [b for b in result.breakdown if not b.is_a]
    return tuple(b.index for b in sorted(below, key=lambda b: (-b.rank, b.index)))[:limit]


def plan_of(script: Script, result: DiagnosisResult) -> tuple[PlanStep, ...]:
    """The 90-day plan: one step per slot from the weakest answers, or () with fewer than PLAN_MIN."""
    picked = weakest(result)
    if len(picked) < PLAN_MIN:
        return ()
    return tuple(
        PlanStep(when, q, result.answers[q], script.questions[q].step_for(result.answers[q]))
        for when, q in zip(PLAN_SLOTS, picked, strict=False)
    )


@dataclass(frozen=True)
class PeerCounts:
    """How many diagnoses have finished (test users left out) and, per question (0-based), how many of them
    answered A."""

    finished: int = 0
    a: tuple[int, ...] = (0,) * QUESTION_COUNT


def rounded_share(count: int, total: int) -> int:
    """``count / total`` in percent, rounded half up to a multiple of :data:`PEER_STEP` (total > 0)."""
    steps = 100 // PEER_STEP
    return PEER_STEP * ((2 * steps * count + total) // (2 * total))


def peer_shares(counts: PeerCounts, answers: str, *, own: bool) -> tuple[tuple[int, int], ...]:
    """(question, share of shops answering A in %) for the point to fix and the plan's questions, in the
    plan's order; () below :data:`PEER_MIN` finished diagnoses or with ten A's. ``own``: this result is a
    diagnosis finishing now, not yet in the counts (the figures are applied after the commit), so it is
    counted here (its answers to these questions are never A)."""
    total = counts.finished + (1 if own else 0)
    if total < PEER_MIN or len(answers) != QUESTION_COUNT:
        return ()
    return tuple((q, rounded_share(counts.a[q], total)) for q in weakest(score(answers)))


def build(script: Script, answers: str) -> Built:
    """The parts of the result for these answers (ten letters A-D; ValueError otherwise)."""
    res = score(answers)
    tier = script.tiers[res.tier]
    return Built(
        result=res,
        summary=holding(tier.summary_sentences, res.answers),
        theme=holding(tier.theme_sentences, res.answers),
        plan=plan_of(script, res),
    )
