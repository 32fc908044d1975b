"""Benchmark contamination of one question, as plain functions (the Spark step is
``mfr.stages.decontaminate``).

A question and a benchmark item's text (its question and options) are read as words: the near-duplicate
normalisation (``near_key_text``: NFKC, the ``<image>`` tag gone, case and whitespace folded), then word runs
with punctuation dropped (a CJK character is a word). Three signals, the first that holds names the match:

- ``ngram``: the question shares a run of ``n`` words (13 by default, the usual decontamination length) with
  an item's question and options, and states the item's numbers (``numbers_agree``: a template asked with
  other numbers shares long runs of words and is another item);
- ``whole``: a question shorter than ``n`` words (and of ``short_min_words`` or more) is a whole run of an
  item's question and options ("Question: How many cells are black? Options: …" holds "How many cells are black");

  with ``text_needs_image`` (default) both text signals count only where the item has no image, the row has
  none, or the two images are near: a template question ("As shown in the figure, find ∠ABC", "What is the
  value of x?") over another figure is another item;
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

from mfr.dedup.minhash import CJK, jaccard, near_key_text, shingles
from mfr.dedup.near import question_numbers, template_distance

_WORDS = re.compile(f"[{CJK}]|[^\\W{CJK}]+(?:[.,]\\d+)*", re.UNICODE)  # near duplicates' words, no punctuation

SIGNALS = ("ngram", "whole", "image")  # the order a row's matches are reported in


@dataclass(frozen=True)
class DecontamRule:
    ngram: int = 13
    short_min_words: int = 5
    image_bits: int = 8
    question_jaccard: float = 0.5
    text_needs_image: bool = True


def words(text: str | None) -> list[str]:
    """The words decontamination compares: normalised as near duplicates are, punctuation dropped."""
    return _WORDS.findall(near_key_text(text))


def _key(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def gram_keys(text: str | None, n: int) -> list[int]:
    """The distinct ``n``-word runs of a text, hashed; none for a text of fewer than ``n`` words."""
    w = words(text)
    return sorted({_key(" ".join(w[i:i + n])) for i in range(len(w) - n + 1)})


def _whole(w: list[str]) -> int:
    return _key("\x00whole\x00" + " ".join(w))


def whole_key(text: str | None, n: int, min_words: int = 1) -> int | None:
    """The hash of a whole short text: ``min_words`` up to ``n - 1`` words (None otherwise)."""
    w = words(text)
    return _whole(w) if max(1, min_words) <= len(w) < n else None


def run_keys(text: str | None, n: int, min_words: int = 1) -> list[int]:
    """The ``whole_key`` of every run of ``min_words`` to ``n - 1`` words of a text (an item's side: a short
    question that is one of these runs is contained in the item)."""
    w = words(text)
    return sorted({_whole(w[i:i + k]) for k in range(max(1, min_words), min(n, len(w) + 1)) for i in range(len(w) - k + 1)})


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


def numbers_agree(question: str | None, item_question: str | None, item_full_text: str | None = None) -> bool:
    """Whether a row states the numbers of an item: every number of the item's question is in the row's, and
    every number of the row's is in the item's question or options (a row often carries the options in its
    question text). "The same question with other numbers" is another item, however many words it shares."""
    row, asked = set(question_numbers(question)), set(question_numbers(item_question))
    offered = asked | set(question_numbers(item_full_text))
    return asked <= row and row <= offered


def image_bits(a: tuple[int, int] | None, b: tuple[int, int] | None) -> int | None:
    """Bits apart of the farther of the two hashes (pHash, dHash); None unless both images are there."""
    return None if a is None or b is None else template_distance(a, b)


def text_match_counts(item_has_image: bool, row_has_image: bool, bits: int | None, rule: DecontamRule) -> bool:
    """Whether a text match (a shared n-gram, a short question whole) counts: always without
    ``text_needs_image``, or when either side has no image to compare; else only when the images are near."""
    if not rule.text_needs_image or not item_has_image or not row_has_image:
        return True
    return bits is not None and bits <= rule.image_bits


def image_match(question: str | None, image: tuple[int, int] | None, item_question: str | None,
                item_image: tuple[int, int] | None, rule: DecontamRule) -> tuple[bool, float, int | None]:
    """The image signal for a row and an item: (match, Jaccard of the questions, image bits)."""
    bits = image_bits(image, item_image)
    if bits is None or bits > rule.image_bits:
        return False, 0.0, bits
    similarity = jaccard(shingles(question or ""), shingles(item_question or ""))
    return similarity >= rule.question_jaccard and numbers_agree(question, item_question), similarity, bits
