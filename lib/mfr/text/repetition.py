"""Exact n-gram repetition check (pure): does any n-gram of whitespace tokens occur ≥ freq times?

The plain definition counts every n-token tuple of the text. This computes the same decision fast:
tokens become integer ids, every window of n ids gets a rolling polynomial hash in O(L) vectorised
steps (uint64, wrapping), and only windows whose hash occurs ≥ freq times are compared exactly.
Equal tuples always hash equal, so nothing is missed; exact comparison means nothing is invented.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np

from mfr.text.cot import THINK_CLOSE, THINK_OPEN

# Hashes are polynomials over uint64 that wrap: sum_j x[i+j] * B^(i+j), normalised by B^-i. B is odd,
# so it is invertible modulo 2^64 and every span's hash comes from two prefix sums: O(L), no sorting.
_B = np.uint64(0x9E3779B97F4A7C15)  # over token ids (windows)
_C = np.uint64(0xD6E8FEB86659FD93)  # over bytes or code points (tokens)
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
    # token ids from Python's string hash (C speed); collisions are caught by the exact check below
    ids = np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)
    powers, inverses = _powers(_B, len(tokens))
    with np.errstate(over="ignore"):
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(ids * powers, dtype=np.uint64)])
        hashes = (prefix[n:] - prefix[:windows]) * inverses[:windows]
    order = np.argsort(hashes, kind="stable")
    ranked = hashes[order]
    # a hash value seen freq times spans freq consecutive entries of the sorted array
    starts = np.flatnonzero(ranked[freq - 1:] == ranked[: windows - freq + 1])
    if starts.size == 0:
        return False
    candidates = np.isin(hashes, np.unique(ranked[starts]))
    positions_by_hash: dict[int, list[int]] = {}
    for i in np.flatnonzero(candidates):
        positions_by_hash.setdefault(int(hashes[i]), []).append(int(i))
    for positions in positions_by_hash.values():  # confirm exactly: a collision must not reject a trace
        exact = Counter(tuple(tokens[i:i + n]) for i in positions)
        if exact.most_common(1)[0][1] >= freq:
            return True
    return False


# str.split() splits on exactly these code points (all ≤ U+3000; tests check the whole range).
_SPACE_LIMIT = 0x3001
_IS_SPACE = np.array([chr(c).isspace() for c in range(_SPACE_LIMIT + 1)], dtype=bool)
# Whitespace that str.split() honours beyond ASCII; texts without any take the byte-level path.
_WIDE_SPACE = re.compile("[" + "".join(chr(c) for c in range(128, _SPACE_LIMIT + 1) if chr(c).isspace()) + "]")
_BYTE_SPACE = np.array([chr(b).isspace() for b in range(128)] + [False] * 128, dtype=bool)


def _hash_spans(units: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Polynomial hash of each run of ``word`` units (bytes or code points)."""
    edges = np.diff(word.view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    powers, inverses = _powers(_C, units.size)
    with np.errstate(over="ignore"):
        prefix = np.empty(units.size + 1, dtype=np.uint64)
        prefix[0] = 0
        np.cumsum(units * powers, dtype=np.uint64, out=prefix[1:])
        return (prefix[ends] - prefix[starts]) * inverses[starts]


def token_hashes(text: str) -> np.ndarray:
    """One uint64 per ``text.split()`` token, computed on arrays without making the tokens."""
    if not text:
        return np.zeros(0, dtype=np.uint64)
    if not _WIDE_SPACE.search(text):
        # UTF-8 bytes: every byte of a multi-byte character is >= 0x80, so only ASCII bytes split
        data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        return _hash_spans(data.astype(np.uint64), ~_BYTE_SPACE[data])
    cp = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    return _hash_spans(cp.astype(np.uint64), ~_IS_SPACE[np.minimum(cp, _SPACE_LIMIT)])


def text_has_repeated_ngram(text: str, n: int = 50, freq: int = 3) -> bool:
    """``has_repeated_ngram(text.split(), n, freq)``, computed mostly on arrays.

    Window hashes are counted in buckets (no sort); only windows in a bucket holding ≥ freq of them are
    checked exactly, on the real tokens.
    """
    ids = token_hashes(text)
    windows = ids.size - n + 1
    if windows < freq:
        return False
    if freq == 1:
        return True
    powers, inverses = _powers(_B, ids.size)
    with np.errstate(over="ignore"):
        prefix = np.concatenate([[np.uint64(0)], np.cumsum(ids * powers, dtype=np.uint64)])
        hashes = (prefix[n:] - prefix[:windows]) * inverses[:windows]
    bits = max(8, int(windows).bit_length() + 2)
    buckets = (hashes >> np.uint64(64 - bits)).astype(np.int64)
    counts = np.bincount(buckets, minlength=1 << bits)
    hot = np.flatnonzero(counts[buckets] >= freq)
    if hot.size == 0:
        return False
    # buckets are coarse: keep only full 64-bit hashes that really occur freq times
    values, counts_full = np.unique(hashes[hot], return_counts=True)
    repeated = values[counts_full >= freq]
    if repeated.size == 0:
        return False
    hot = hot[np.isin(hashes[hot], repeated)]
    tokens = text.split()
    by_hash: dict[int, list[int]] = {}
    for i in hot:
        by_hash.setdefault(int(hashes[i]), []).append(int(i))
    for positions in by_hash.values():
        if len(positions) >= freq:
            exact = Counter(tuple(tokens[i:i + n]) for i in positions)
            if exact.most_common(1)[0][1] >= freq:
                return True
    return False


def repetition_problem(text: str | None, n: int = 50, freq: int = 3) -> str | None:
    """``ngram_repetition`` when the think part repeats an n-gram ≥ freq times, else None."""
    return "ngram_repetition" if text_has_repeated_ngram(think_part(text), n, freq) else None

