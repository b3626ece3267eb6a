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
  alone is the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from conversations.content import Script, Sentence
from scoring import DiagnosisResult, score

PLAN_SLOTS = ("plan_month", "plan_next_month", "plan_quarter")  # the text keys naming each step's time
PLAN_MIN = 2  # fewer weak answers than this: the point to fix is the whole plan


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
