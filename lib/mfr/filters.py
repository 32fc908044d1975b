"""Selection filters (pure): each returns None to keep a row, or a fixed reason code.

Applied in the seed's order — content, structure, repetition, correctness — with thresholds from
``selection.*`` in the config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from mfr.answers.free_form import written_answer_verdict
from mfr.answers.verdict import Verdict
from mfr.answers.verify import verify
from mfr.text.cot import parse_trace, word_count
from mfr.text.repetition import repetition_problem


@dataclass(frozen=True)
class SelectionRules:
    min_response_words: int = 200
    min_caption_words: int = 100
    error_keyword: str = "[ERROR]"
    no_answer_check_sources: frozenset[str] = field(default_factory=frozenset)
    ngram_n: int = 50
    ngram_freq: int = 3

    @classmethod
    def from_config(cls, cfg) -> SelectionRules:
        return cls(
            min_response_words=cfg.settings.selection.content.min_response_words,
            min_caption_words=cfg.settings.selection.content.min_caption_words,
            error_keyword=cfg.settings.selection.content.error_keyword,
            no_answer_check_sources=frozenset(cfg.settings.selection.structure.no_answer_check_sources),
            ngram_n=cfg.settings.selection.quality.ngram_n,
            ngram_freq=cfg.settings.selection.quality.ngram_freq,
        )


def content_problem(response: str | None, caption: str | None, rules: SelectionRules) -> str | None:
    if response and rules.error_keyword and rules.error_keyword in response:
        return "response_error"
    if word_count(response) < rules.min_response_words:
        return "cot_too_short"
    if word_count(caption) < rules.min_caption_words:
        return "caption_too_short"
    return None


def structure_problem(response: str | None, source: str | None, rules: SelectionRules) -> str | None:
    """Exactly one <think> and one </think>, in order; an <answer> pair outside the think block."""
    trace = parse_trace(response)
    if trace.problem:
        return "think_structure"
    if exempt_from_answer_check(source, rules.no_answer_check_sources):
        return None
    return None if trace.has_outside_answer else "answer_missing"


def exempt_from_answer_check(source: str | None, names: Iterable[str]) -> bool:
    """Whether ``source`` is one of ``selection.structure.no_answer_check_sources``: no answer tag needed
    (at distill and select). The seed matches the names as substrings of the source
    (``LLaVA-CoT`` covers ``LLaVA-CoT-100k``)."""
    if not source:
        return False
    return any(name in source for name in names if name)


@dataclass(frozen=True)
class RowChecks:
    content: str | None
    structure: str | None
    repetition: str | None
    verdict: Verdict


def check_row(source: str | None, question: str | None, answer: str | None, response: str | None,
              caption: str | None, rules: SelectionRules) -> RowChecks:
    """The seed's checks of one row. The no-answer-check sources need no answer tag, and their correctness is
    checked like any source's (as the seed's correctness step does): the marked answer where there is one,
    else what the written solution states (:func:`written_answer_verdict`: sure matches only, the rest left
    to the judge)."""
    verdict = verify(question, answer, response)
    if verdict.method == "no_answer" and exempt_from_answer_check(source, rules.no_answer_check_sources):
        verdict = written_answer_verdict(question, answer, response)
    return RowChecks(
        content_problem(response, caption, rules),
        structure_problem(response, source, rules),
        repetition_problem(response, rules.ngram_n, rules.ngram_freq),
        verdict,
    )
