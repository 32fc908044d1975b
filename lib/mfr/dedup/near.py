"""When two rows are the same sample: their images are near (perceptual hashes within a few bits) **and**
their questions are near (Jaccard of word shingles) **and** the numbers in their questions and their gold
answers agree after normalisation (where both have one). Rows without an image compare by question alone.

What must stay apart, and which signal keeps it apart: one diagram asked several questions (the questions
differ), one template question over other figures (the images differ; a question asked of several images
is a template, whose figures must be near by both hashes), one question with other numbers (the numbers
differ).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from mfr.answers.normalize import normalize, unwrap
from mfr.dedup.fingerprint import distance
from mfr.dedup.minhash import near_key_text

_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class NearRule:
    question_jaccard: float = 0.8  # shingle Jaccard at least this
    image_bits: int = 8  # pHash or dHash bits apart at most this (of 64): either hash close is enough, as each
    # is unstable on its own images (pHash where low frequencies sit at their median: mostly blank diagrams)
    template_images: int = 3  # a question asked of this many images or more is a template ...
    template_bits: int = 4  # ... whose figures look alike (charts, grids, triangles): both hashes this close


@dataclass(frozen=True)
class Sample:
    question: str | None
    answer: str | None
    image: tuple[int, int] | None  # (pHash, dHash); None: no image
    template: bool = False  # its question is asked of NearRule.template_images images or more


def image_distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Bits apart of the closer of the two hashes."""
    return min(distance(a[0], b[0]), distance(a[1], b[1]))


def template_distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    """Bits apart of the farther of the two hashes: figures drawn from one template (the same axes, the same
    grid) share most of either hash, so one close hash says little there; a re-hosted copy keeps both."""
    return max(distance(a[0], b[0]), distance(a[1], b[1]))


def compared_bits(a: Sample, b: Sample) -> int | None:
    """The bits the rule compares for two rows' images (None unless both have one): the farther hash when
    either question is a template, else the closer one."""
    if a.image is None or b.image is None:
        return None
    return template_distance(a.image, b.image) if a.template or b.template else image_distance(a.image, b.image)


def question_numbers(question: str | None) -> Counter[str]:
    """The numbers a question states (after NFKC: full-width digits fold), as written values (``5`` = ``5.0``)."""
    found = _NUMBER.findall(near_key_text(question))
    return Counter(str(float(n)).rstrip("0").rstrip(".") for n in found)


def same_answer(a: str | None, b: str | None) -> bool | None:
    """Whether two gold answers agree after normalisation; None when either is missing."""
    if not a or not b or not str(a).strip() or not str(b).strip():
        return None
    return normalize(unwrap(str(a))) == normalize(unwrap(str(b)))


def near_duplicate(a: Sample, b: Sample, jaccard: float, rule: NearRule = NearRule()) -> tuple[bool, str]:
    """The decision on a candidate pair whose question shingles' Jaccard is ``jaccard``, and why (for
    ``reject_detail``)."""
    if jaccard < rule.question_jaccard:
        return False, f"questions differ (jaccard {jaccard:.2f})"
    if (a.image is None) != (b.image is None):
        return False, "one has an image, the other none"
    bits = compared_bits(a, b)
    if bits is not None:
        template = a.template or b.template
        if bits > (rule.template_bits if template else rule.image_bits):
            return False, f"images differ ({bits} bits{', a template question: both hashes' if template else ''})"
    if question_numbers(a.question) != question_numbers(b.question):
        return False, "numbers in the questions differ"
    if same_answer(a.answer, b.answer) is False:
        return False, "gold answers differ"
    image = f", image {bits} bits apart" if bits is not None else ""
    return True, f"question jaccard {jaccard:.2f}{image}"
