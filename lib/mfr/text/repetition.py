"""Exact n-gram repetition check (pure): does any n-gram of whitespace tokens occur ≥ freq times?

The plain definition counts every n-token tuple of the text. This computes the same decision fast:
tokens become integer ids, every window of n ids is hashed in one vectorised step (a random linear
form over uint64, wrapping), and only windows whose hash occurs ≥ freq times are compared exactly.
Equal tuples always hash equal, so nothing is missed; exact comparison means nothing is invented.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from mfr.text.cot import THINK_CLOSE, THINK_OPEN

_RNG = np.random.default_rng(0x5EED)
_MULTIPLIERS: dict[int, np.ndarray] = {}


def _multipliers(n: int) -> np.ndarray:
    m = _MULTIPLIERS.get(n)
    if m is None:
        m = _RNG.integers(1, 2**63, size=n, dtype=np.uint64) | np.uint64(1)
        _MULTIPLIERS[n] = m
    return m


def think_part(text: str | None) -> str:
    """The text inside the think block; the whole text when there is no block."""
    if not text:
        return ""
    start = text.find(THINK_OPEN)
    if start < 0:
        return text
    end = text.find(THINK_CLOSE, start)
    return text[start + len(THINK_OPEN): end if end >= 0 else len(text)]


def max_ngram_count_plain(tokens: list[str], n: int) -> int:
    """The plain definition (reference for tests and the benchmark baseline)."""
    if len(tokens) < n:
        return 0
    return max(Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)).values())


def has_repeated_ngram(tokens: list[str], n: int = 50, freq: int = 3) -> bool:
    """True when some n-gram of ``tokens`` occurs at least ``freq`` times (overlaps count)."""
    if n < 1 or freq < 1:
        raise ValueError("n and freq must be positive")
    windows = len(tokens) - n + 1
    if windows < freq:
        return False
    if freq == 1:
        return True
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.uint64, count=len(tokens))
    if len(vocab) == len(tokens):
        return False  # no token repeats, so no n-gram can
    with np.errstate(over="ignore"):
        hashes = (sliding_window_view(ids, n) * _multipliers(n)).sum(axis=1, dtype=np.uint64)
    values, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts >= freq)
    if candidates.size == 0:
        return False
    for c in candidates:  # confirm exactly: a hash collision must not reject a trace
        positions = np.flatnonzero(inverse == c)
        exact = Counter(tuple(tokens[i:i + n]) for i in positions)
        if exact.most_common(1)[0][1] >= freq:
            return True
    return False


def repetition_problem(text: str | None, n: int = 50, freq: int = 3) -> str | None:
    """``ngram_repetition`` when the think part repeats an n-gram ≥ freq times, else None."""
    return "ngram_repetition" if has_repeated_ngram(think_part(text).split(), n, freq) else None
