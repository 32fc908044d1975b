"""Benchmark contamination of one question, as plain functions (the Spark step is
``mfr.stages.decontaminate``).

A question and a benchmark item's text (its question and options) are read as words: the near-duplicate
normalisation (``near_key_text``: NFKC, the ``<image>`` tag gone, case and whitespace folded), then word runs
with punctuation dropped (a CJK character is a word). Three signals, the first that holds names the match:

- ``ngram``: the question shares a run of ``n`` words (13 by default, the usual decontamination length) with
  an item's question and options;
- ``whole``: a question shorter than ``n`` words equals an item's whole question (with ``short_needs_image``,
  only where the item has no image or the images are near too: "What is the value of x?" alone says nothing);
- ``image``: the images are near (pHash and dHash each within ``image_bits``: figures drawn from one template
  share most of either hash, a re-hosted copy keeps both), the questions similar (Jaccard of word 3-shingles at
  least ``question_jaccard``) and their numbers the same ("the same question with other numbers" is another
  item).

Hashes are the first 8 bytes of BLAKE2b (the same on every executor), as signed 64-bit integers for Spark.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mfr.dedup.minhash import jaccard, near_key_text, shingles
from mfr.dedup.near import question_numbers, template_distance

_CJK = "\u3400-\u9fff\uf900-\ufaff"
_WORDS = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+(?:[.,]\\d+)*", re.UNICODE)

SIGNALS = ("ngram", "whole", "image")  # the order a row's matches are reported in


@dataclass(frozen=True)
class DecontamRule:
    ngram: int = 13
    image_bits: int = 8
    question_jaccard: float = 0.5
    short_needs_image: bool = True


def words(text: str | None) -> list[str]:
    """The words decontamination compares: normalised as near duplicates are, punctuation dropped."""
    return _WORDS.findall(near_key_text(text))


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def gram_keys(text: str | None, n: int) -> list[int]:
    """The distinct ``n``-word runs of a text, hashed; none for a text of fewer than ``n`` words."""
    w = words(text)
    return sorted({_key(" ".join(w[i:i + n])) for i in range(len(w) - n + 1)})


def whole_key(text: str | None, n: int) -> int | None:
    """The hash of a whole text shorter than ``n`` words (None when empty or not short)."""
    w = words(text)
    return _key("\x00whole\x00" + " ".join(w)) if 0 < len(w) < n else None


def item_text(question: str | None, options: object = None) -> str:
    """An item's question followed by its options (a list, a string, or none)."""
    if options is None:
        extra = ""
    elif isinstance(options, str):
        extra = options
    elif isinstance(options, Iterable):
        extra = " ".join(str(o) for o in options if o is not None)
    else:
        extra = str(options)
    return f"{question or ''} {extra}".strip()


def image_bits(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int | None:
    """Bits apart of the farther of the two hashes (pHash, dHash); None unless both images are there."""
    return None if a is None or b is None else template_distance(a, b)


def short_match_counts(item_has_image: bool, bits: int | None, rule: DecontamRule) -> bool:
    """Whether a whole-question match of a short question counts: always without ``short_needs_image`` or
    when the item has no image; else only when both images are there and near."""
    if not rule.short_needs_image or not item_has_image:
        return True
    return bits is not None and bits <= rule.image_bits


def image_match(question: str | None, image: tuple[int, int] | None, item_question: str | None,
                item_image: tuple[int, int] | None, rule: DecontamRule) -> tuple[bool, float, int | None]:
    """The image signal for a row and an item: (match, Jaccard of the questions, image bits)."""
    bits = image_bits(image, item_image)
    if bits is None or bits > rule.image_bits:
        return False, 0.0, bits
    similarity = jaccard(shingles(question or ""), shingles(item_question or ""))
    same_numbers = question_numbers(question) == question_numbers(item_question)
    return similarity >= rule.question_jaccard and same_numbers, similarity, bits
