"""Chain-of-thought structure checks (pure): ``<think>…</think>`` then ``<answer>…</answer>``."""

from __future__ import annotations

import re

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)


def word_count(text: str | None) -> int:
    return len(text.split()) if text else 0


def cot_problem(text: str | None, min_words: int = 100, require_answer: bool = True) -> str | None:
    """None when the trace is a valid CoT, else why not (a short fixed code).

    Valid: exactly one ``<think>`` and one ``</think>``, in that order; an ``<answer>…</answer>`` pair
    outside the think block (unless ``require_answer`` is off); at least ``min_words`` words.
    """
    if not text or not text.strip():
        return "cot_missing"
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
        return "think_tags"
    start, end = text.index(THINK_OPEN), text.index(THINK_CLOSE)
    if start > end:
        return "think_order"
    if require_answer:
        outside = text[:start] + text[end + len(THINK_CLOSE):]
        if not ANSWER_TAG.search(outside):
            return "answer_missing"
    if word_count(text) < min_words:
        return "too_short"
    return None


def final_answer(text: str | None) -> str | None:
    """The last ``<answer>`` outside the think block, stripped; None when there is none."""
    if not text:
        return None
    end = text.rfind(THINK_CLOSE)
    tail = text[end + len(THINK_CLOSE):] if end >= 0 else text
    found = ANSWER_TAG.findall(tail)
    return found[-1].strip() if found else None
