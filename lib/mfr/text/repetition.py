"""Exact n-gram repetition check (pure): does any n-gram of whitespace tokens occur ≥ freq times?

The plain definition counts every n-token tuple of the text. This computes the same decision fast:
the text is split as UTF-8 bytes where that equals ``str.split()`` (no str objects made), tokens become
integer ids, every window of n ids gets a rolling polynomial hash in O(L) vectorised steps (uint64,
wrapping), hashes are counted in buckets, and only windows whose full hash occurs at least freq times
are compared exactly. Equal tuples always hash equal, so nothing is missed; exact comparison means
nothing is invented.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from mfr.text.cot import think_part

try:  # the C kernel (built by `pip install`, optional); the numpy path below gives the same decisions
    from mfr.text._ngram import has_repeat as _native_has_repeat
except ImportError:  # pragma: no cover - no compiler where the package was installed
    _native_has_repeat = None

# Hashes are polynomials over uint64 that wrap: sum_j x[i+j] * B^(i+j), normalised by B^-i. B is odd,
# so it is invertible modulo 2^64 and every span's hash comes from two prefix sums: O(L), no sorting.
_B = np.uint64(0x9E3779B97F4A7C15)  # over token ids (windows)
_TABLES: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _powers(base: np.uint64, length: int) -> tuple[np.ndarray, np.ndarray]:
    """base^k and base^-k for k < length (cached, grown by doubling)."""
    have = _TABLES.get(int(base))
    if have is None or len(have[0]) < length:
        size = max(length, 2 * len(have[0]) if have else 1024)
        inverse = np.uint64(pow(int(base), -1, 2**64))
        with np.errstate(over="ignore"):
            pw = np.concatenate([[np.uint64(1)], np.cumprod(np.full(size - 1, base, dtype=np.uint64))])
            inv = np.concatenate([[np.uint64(1)], np.cumprod(np.full(size - 1, inverse, dtype=np.uint64))])
        have = _TABLES[int(base)] = (pw, inv)
    return have[0][:length], have[1][:length]


def max_ngram_count_plain(tokens: list[str], n: int) -> int:
    """The plain definition (reference for tests and the benchmark baseline)."""
    if len(tokens) < n:
        return 0
    return max(Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)).values())


def has_repeated_ngram(tokens: list, n: int = 50, freq: int = 3) -> bool:
    """True when some n-gram of ``tokens`` occurs at least ``freq`` times (overlaps count)."""
    if n < 1 or freq < 1:
        raise ValueError("n and freq must be positive")
    windows = len(tokens) - n + 1
    if windows < freq:
        return False
    if freq == 1:
        return True
    # token ids from Python's hash (C speed); collisions are caught by the exact check below
    ids = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    powers, inverses = _powers(_B, len(tokens))
    with np.errstate(over="ignore"):
        prefix = np.empty(len(tokens) + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(ids * powers, dtype=np.uint64, out=prefix[1:])
        hashes = (prefix[n:] - prefix[:windows]) * inverses[:windows]
    # count hashes in buckets (no sort); only buckets holding >= freq windows can hide a repeat
    bits = max(8, int(windows).bit_length() + 2)
    buckets = (hashes >> np.uint64(64 - bits)).astype(np.intp)
    hot = np.flatnonzero(np.bincount(buckets, minlength=1 << bits)[buckets] >= freq)
    if hot.size < freq:
        return False
    values, counts = np.unique(hashes[hot], return_counts=True)
    repeated = values[counts >= freq]
    if repeated.size == 0:
        return False
    by_hash: dict[int, list[int]] = {}
    for i in hot[np.isin(hashes[hot], repeated)]:
        by_hash.setdefault(int(hashes[i]), []).append(int(i))
    for positions in by_hash.values():  # confirm exactly: a collision must not reject a trace
        exact = Counter(tuple(tokens[i:i + n]) for i in positions)
        if exact.most_common(1)[0][1] >= freq:
            return True
    return False


# str.split() splits on ASCII whitespace plus \x1c-\x1f and wider code points; bytes.split() splits on
# ASCII whitespace only. Where none of the extra ones occur the two give the same tokens (UTF-8 bytes of
# a multi-byte character are all >= 0x80, so they never split).
_BYTES_SPACE = " \t\n\r\x0b\x0c"
_EXTRA_UTF8 = tuple(chr(c).encode("utf-8") for c in range(0x3001) if chr(c).isspace() and chr(c) not in _BYTES_SPACE)
_SPLIT_HINT = tuple(sorted({b[:2] for b in _EXTRA_UTF8}))  # cheap first test: leading bytes


def _bytes_split_is_exact(data: bytes) -> bool:
    return not (any(h in data for h in _SPLIT_HINT) and any(e in data for e in _EXTRA_UTF8))


def split_tokens(text: str) -> list:
    """``text.split()`` as UTF-8 ``bytes`` tokens when that is exact (faster: no str objects), else str.

    Two token lists compare equal exactly when their ``str`` forms do, so n-gram decisions are the same.
    """
    data = text.encode("utf-8")
    return data.split() if _bytes_split_is_exact(data) else text.split()


def text_has_repeated_ngram(text: str, n: int = 50, freq: int = 3, native: bool = True) -> bool:
    """``has_repeated_ngram(text.split(), n, freq)``: in the C kernel on UTF-8 bytes where bytes.split()
    equals str.split(), else on Python tokens."""
    data = text.encode("utf-8")
    if native and _native_has_repeat is not None:
        decided = _native_has_repeat(data, n, freq)  # None: whitespace only str.split() knows
        return decided if decided is not None else has_repeated_ngram(text.split(), n, freq)
    if not _bytes_split_is_exact(data):
        return has_repeated_ngram(text.split(), n, freq)
    return has_repeated_ngram(data.split(), n, freq)


def repetition_problem(text: str | None, n: int = 50, freq: int = 3) -> str | None:
    """``ngram_repetition`` when the think part repeats an n-gram ≥ freq times, else None."""
    return "ngram_repetition" if text_has_repeated_ngram(think_part(text), n, freq) else None

