"""PLACEHOLDER — replaced by the classification stage of issue 4."""

from __future__ import annotations

from .models import Classification, Submission

Lexicon = dict


def load_lexicon(path: str | None) -> Lexicon:
    return {}


def classify(submission: Submission, lexicon: Lexicon) -> Classification:
    flags = frozenset({"auto"}) if submission.automatic else frozenset()
    return Classification(category="khac-gop-y", urgency="thuong", confidence=0.0, flags=flags)
