"""Pure scoring for crmbot: the ten-question CRM diagnosis (see :mod:`scoring.diagnosis`)."""

from scoring.diagnosis import (
    CHOICES,
    QUESTION_COUNT,
    TIERS,
    Comparison,
    DiagnosisResult,
    NextTier,
    QuestionScore,
    compare,
    next_point,
    next_tier,
    parse_answers,
    score,
    tier_for,
)

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
