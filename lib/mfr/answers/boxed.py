"""Balanced braces and ``\\boxed{}`` in LaTeX answers (pure, linear)."""

from __future__ import annotations

import re

_BOXED = re.compile(r"\\boxed\s*\{")


def closing_braces(text: str) -> dict[int, int]:
    """Index of each '{' → index of its matching '}' (unmatched ones absent), in one pass."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` (linear: a trace full of unclosed boxes costs one pass)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    pairs = closing_braces(text)
    for start in reversed(starts):
        end = pairs.get(start - 1)
        if end is not None:
            return text[start:end]
    return None
