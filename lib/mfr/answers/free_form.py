"""Written solutions that mark no answer (the no-answer-check sources): consistent only where the last
sentence states a short gold and negates nothing; everything else is left undecided (to the judge).
"""

from __future__ import annotations

import re
import unicodedata

from mfr.answers.normalize import unwrap
from mfr.answers.numbers import NUM, NUMBER_WORDS, numbers_equal, quantity
from mfr.answers.verdict import Verdict
from mfr.text.cot import parse_trace

# Written solutions without a marked answer (the no-answer-check sources: free-form replies to visual
# questions). The seed compares by exact or substring match, else asks its judge; here a match counts only
# where the solution's last sentence states the gold and negates nothing, and everything else is left to the
# judge: such a row is never consistent by default.
_FF_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")


_FF_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|cannot|isn't|aren't|wasn't|weren't|doesn't|don't|"
                       r"didn't|can't|won't|incorrect|wrong)\b|不是|没有|不", re.I)


_FF_WORDS = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*", re.UNICODE)


_FREE_FORM_MAX_WORDS = 6  # a name, a short phrase, a number with its unit: longer golds go to the judge


def _ff_last_sentence(text: str) -> str:
    parts = [p.strip() for p in _FF_SENTENCE_END.split(re.sub(r"[*_`#>]+", " ", text)) if p and p.strip()]
    return parts[-1] if parts else ""


def _ff_words(s: str) -> list[str]:
    return [w.lower() for w in _FF_WORDS.findall(unicodedata.normalize("NFKC", s))]


def _ff_contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def written_answer_verdict(question: str | None, gold: str | None, response: str | None) -> Verdict:
    """A solution that marks no answer, against the gold: consistent when its last sentence states a short
    gold (its words in order, or for a number the one number the sentence gives, the gold's unit too when it
    has one) and negates nothing; undecided otherwise (the judge decides, when one is set)."""
    if gold is None or not str(gold).strip():
        return Verdict(True, "no_gold", "no ground-truth answer: consistent by the seed's rule")
    last = _ff_last_sentence(parse_trace(response).tail if response else "")
    if not last:
        return Verdict(False, "no_answer", "the trace gives no written solution")
    shown = f"gold {gold!r} vs the solution's last sentence {last[-300:]!r}"
    gold_words = _ff_words(unwrap(str(gold)))
    if not gold_words or len(gold_words) > _FREE_FORM_MAX_WORDS or _FF_NEGATION.search(last):
        return Verdict(None, "free_form", f"{shown}: undecided")
    value = quantity(unwrap(str(gold)))
    if value is not None:
        numbers = [float(m) for m in re.findall(NUM, last.replace(",", "")) if re.search(r"\d", m)]
        numbers += [float(NUMBER_WORDS[w]) for w in _ff_words(last) if w in NUMBER_WORDS]  # "three people"
        unit_ok = value[2] is None or _ff_contains(_ff_words(last), _ff_words(value[2]))
        if len(numbers) == 1 and numbers_equal(numbers[0], value[0]) and unit_ok:
            return Verdict(True, "free_form", f"{shown}: states the gold's value")
        return Verdict(None, "free_form", f"{shown}: undecided")
    if _ff_contains(_ff_words(last), gold_words):
        return Verdict(True, "free_form", f"{shown}: states the gold")
    return Verdict(None, "free_form", f"{shown}: undecided")
