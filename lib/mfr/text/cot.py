"""The one trace parser (pure): a response is ``<think>…</think>`` followed by the written solution.

Distill (is a stored or new trace usable?), select (structure filter, answer to verify), export (the
assistant turn) and the repetition check all read a trace through ``parse_trace``, so one defect gets
one name everywhere: ``think_tags`` (not exactly one ``<think>`` and one ``</think>``), ``think_order``
(``</think>`` first), ``answer_missing`` (no ``<answer>…</answer>`` outside the think block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.S)


def word_count(text: str | None) -> int:
    return len(text.split()) if text else 0


@dataclass(frozen=True)
class Trace:
    """A response split at its think block.

    ``problem`` is None for a well-formed block (exactly one ``<think>`` before one ``</think>``), else
    ``cot_missing``, ``think_tags`` or ``think_order``; ``think``, ``before`` and ``solution`` are set only
    when the block is well formed. ``tail`` is the text after the last ``</think>`` (the whole text when
    there is none): where a final answer is looked for even in a malformed trace.
    """

    text: str
    problem: str | None
    think: str | None = None
    before: str = ""
    solution: str = ""

    @property
    def tail(self) -> str:
        end = self.text.rfind(THINK_CLOSE)
        return self.text[end + len(THINK_CLOSE):] if end >= 0 else self.text

    @property
    def outside(self) -> str:
        """Text outside the think block (before it and the written solution)."""
        return self.before + self.solution

    @property
    def has_outside_answer(self) -> bool:
        return bool(ANSWER_TAG.search(self.outside))

    @property
    def final_answer(self) -> str | None:
        """The last ``<answer>`` after the (last) think block, stripped; None when there is none."""
        found = ANSWER_TAG.findall(self.tail)
        return found[-1].strip() if found else None


def parse_trace(text: str | None) -> Trace:
    if not text or not text.strip():
        return Trace(text or "", "cot_missing")
    if text.count(THINK_OPEN) != 1 or text.count(THINK_CLOSE) != 1:
        return Trace(text, "think_tags")
    start, end = text.index(THINK_OPEN), text.index(THINK_CLOSE)
    if start > end:
        return Trace(text, "think_order")
    return Trace(text, None, think=text[start + len(THINK_OPEN):end], before=text[:start],
                 solution=text[end + len(THINK_CLOSE):])


def with_think_block(content: str, reasoning: str | None = None) -> str:
    """The trace as stored (the think block, then the written solution) from a chat reply, whichever way
    the server returned the thinking: split out by a reasoning parser (``reasoning``), inline, or with
    only the closing ``</think>`` (the chat template opened the block in the prompt)."""
    if THINK_OPEN in content:
        return content
    if THINK_CLOSE in content:
        return THINK_OPEN + (reasoning or "") + content
    if reasoning:
        return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{content}"
    return content


def without_thinking(content: str) -> str:
    """The written answer only: whatever precedes the last ``</think>`` is the model's thinking (a
    caption, a verdict or a cleaned question is stored without it)."""
    end = content.rfind(THINK_CLOSE)
    return content[end + len(THINK_CLOSE):].lstrip() if end >= 0 else content


def cot_problem(text: str | None, min_words: int = 100, require_answer: bool = True) -> str | None:
    """None when the trace is a valid CoT, else the sub-code of ``cot_invalid`` (see ``mfr.reasons``).

    Valid: a well-formed think block; an ``<answer>…</answer>`` pair outside it (unless ``require_answer``
    is off); at least ``min_words`` words.
    """
    trace = parse_trace(text)
    if trace.problem:
        return trace.problem
    if require_answer and not trace.has_outside_answer:
        return "answer_missing"
    if word_count(text) < min_words:
        return "too_short"
    return None


def final_answer(text: str | None) -> str | None:
    """The last ``<answer>`` outside the think block, stripped; None when there is none."""
    return parse_trace(text).final_answer if text else None


def think_part(text: str | None) -> str:
    """The text inside the think block; the whole text when there is no block (an unclosed block runs to
    the end). Lenient on purpose: the repetition check reads malformed traces too."""
    if not text:
        return ""
    start = text.find(THINK_OPEN)
    if start < 0:
        return text
    end = text.find(THINK_CLOSE, start)
    return text[start + len(THINK_OPEN): end if end >= 0 else len(text)]
