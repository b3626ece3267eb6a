"""Pure scoring for crmbot: the ten-question CRM diagnosis (see :mod:`scoring.diagnosis`)."""

from scoring.diagnosis import (
    CHOICES,
    QUESTION_COUNT,
    TIERS,
    DiagnosisResult,
    QuestionScore,
    next_point,
    parse_answers,
    score,
    tier_for,
)

__all__ = [
    "CHOICES",
    "QUESTION_COUNT",
    "TIERS",
    "DiagnosisResult",
    "QuestionScore",
    "next_point",
    "parse_answers",
    "score",
    "tier_for",
]
