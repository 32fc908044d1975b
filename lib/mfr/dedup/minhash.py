"""MinHash signatures of questions, the LSH band keys that make candidate pairs, and the exact Jaccard that
checks each candidate.

A question is normalised (``near_key_text``: NFKC folds full-width forms, the ``<image>`` tag goes, case and
whitespace fold), cut into word shingles (a CJK character is a word), and each shingle hashed once (CRC-32 of its UTF-8
bytes: the same on every executor, unlike Python's salted ``hash``). A signature is, for each of ``num_perm``
universal hash functions (multiply-shift: the high half of ``a·h + b`` mod 2⁶⁴), the least value over the
shingles: computed for a whole batch
of questions in one numpy pass. Two signatures agree in a position with probability equal to the Jaccard
similarity of the shingle sets; ``bands`` groups positions so that a pair shares a band key with high
probability above the threshold and rarely below it.
"""

from __future__ import annotations

import re
import unicodedata
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from mfr.text.clean_rules import normalized_question

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
# CJK characters one word each (no spaces between words there), other word runs (decimals kept), punctuation
CJK = "\u3400-\u9fff\uf900-\ufaff"  # characters read one word each
_WORD = re.compile(f"[{CJK}]|[^\\W{CJK}]+(?:[.,]\\d+)*|[^\\w\\s]", re.UNICODE)


_IMAGE_TAG = re.compile(r"<image>", re.IGNORECASE)


def near_key_text(question: str | None) -> str:
    """The question as near-duplicate detection reads it: exact dedup's key (``normalized_question``: no
    ``<image>`` tag, case and whitespace folded) of the question with full-width forms folded (NFKC) and the
    tag dropped whatever its case."""
    if not question:
        return ""
    return normalized_question(_IMAGE_TAG.sub(" ", unicodedata.normalize("NFKC", question)))


def shingles(text: str, size: int = 3) -> set[str]:
    """Word ``size``-grams of normalised text (punctuation marks count as words); shorter texts: one shingle."""
    words = _WORD.findall(near_key_text(text))
    if len(words) <= size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def _fnv64(s: str) -> int:
    h = _FNV_OFFSET
    for byte in s.encode("utf-8"):
        h = ((h ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def shingle_hashes(text: str, size: int = 3) -> np.ndarray:
    """The 32-bit hashes of a text's shingles (CRC-32 of the UTF-8 bytes: C speed, the same everywhere)."""
    return np.fromiter((zlib.crc32(s.encode("utf-8")) for s in shingles(text, size)), dtype=np.uint64)


def permutations(num_perm: int, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` of each hash function (a odd), fixed by ``seed``: every executor draws the same."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = rng.integers(0, 1 << 63, size=num_perm, dtype=np.uint64)
    return a, b


def _universal(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Multiply-shift hashing: the high 32 bits of ``a·x + b`` mod 2⁶⁴ (numpy's uint64 arithmetic wraps), a
    universal family for 32-bit keys at two machine operations a value."""
    with np.errstate(over="ignore"):
        return (a * x + b) >> np.uint64(32)


def signatures(texts: Sequence[str | None], num_perm: int = 128, seed: int = 1, size: int = 3,
               chunk: int = 4096) -> np.ndarray:
    """One row of ``num_perm`` minimum hash values (uint32) per text; an empty text's row is all 2³²−1.
    The batch is one numpy pass: every shingle of every text hashed under every function, then the minimum
    per text (``minimum.reduceat`` over each text's run of shingles), ``chunk`` shingles at a time."""
    a, b = permutations(num_perm, seed)
    per_text = [shingle_hashes(t or "", size) for t in texts]
    counts = np.array([h.size for h in per_text], dtype=np.int64)
    out = np.full((len(texts), num_perm), 0xFFFFFFFF, dtype=np.uint64)
    if not counts.sum():
        return out.astype(np.uint32)
    flat = np.concatenate([h for h in per_text if h.size])
    owners = np.repeat(np.nonzero(counts)[0], counts[counts > 0])
    for start in range(0, flat.size, chunk):
        h, who = flat[start:start + chunk], owners[start:start + chunk]
        values = _universal(h[:, None], a[None, :], b[None, :])
        firsts = np.flatnonzero(np.r_[True, who[1:] != who[:-1]])  # where each text's run starts in the chunk
        rows = who[firsts]
        out[rows] = np.minimum(out[rows], np.minimum.reduceat(values, firsts, axis=0))
    return out.astype(np.uint32)


def bands(signature: np.ndarray, num_bands: int) -> list[int]:
    """One key per band of ``len(signature) / num_bands`` values (signed 64-bit, the band's index mixed in):
    rows sharing any key are candidate pairs."""
    rows = len(signature) // num_bands
    if rows * num_bands != len(signature):
        raise ValueError(f"{len(signature)} values do not split into {num_bands} bands")
    keys = []
    for band in range(num_bands):
        part = signature[band * rows:(band + 1) * rows]
        h = _fnv64(f"{band}:" + ",".join(str(int(v)) for v in part))
        keys.append(h - (1 << 64) if h >= 1 << 63 else h)
    return keys


def band_count_for(threshold: float, num_perm: int) -> int:
    """The band count whose S-curve ``1 − (1 − s^r)^b`` crosses ½ nearest ``threshold`` (b·r = num_perm)."""
    best, best_gap = 1, float("inf")
    for b in range(1, num_perm + 1):
        if num_perm % b:
            continue
        r = num_perm // b
        crossing = (1 - 0.5 ** (1 / b)) ** (1 / r)
        if abs(crossing - threshold) < best_gap:
            best, best_gap = b, abs(crossing - threshold)
    return best


def jaccard(a: Iterable[str], b: Iterable[str]) -> float:
    """|A ∩ B| / |A ∪ B| of two shingle sets (1.0 for two empty ones)."""
    sa, sb = set(a), set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def estimated_jaccard(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(x == y))
