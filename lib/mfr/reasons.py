"""Every reject and quarantine code, once: the stage that sets it, what it means, what decides it.

A stage writes only codes registered here for it: Spark steps take their literals from ``code()`` (an
unknown code fails when the step is built), and the runner refuses to finish a run whose output holds a
code not registered for its stage. ``decided_by`` names the one pure function or named Spark step that
decides the code (a test imports each). Sub-codes travel in ``reject_detail`` as ``<sub-code>: …``.
The README's reason table is ``markdown_table()`` (``python -m mfr.reasons``; a test keeps them equal).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field

STAGES = ("collect", "clean", "distill", "select", "export")


@dataclass(frozen=True)
class Reason:
    stage: str
    code: str
    meaning: str
    decided_by: str  # dotted path of the function or Spark step that decides it
    quarantine: bool = False  # a record that cannot be a row: it goes to <schema>.quarantine
    subcodes: dict[str, str] = field(default_factory=dict)
    # a model call's outcome that a later run asks again: an incremental run recomputes these rows even
    # when their input is unchanged (as a full run would)
    retried: bool = False


_IMAGE = "mfr.image.clean.clean_image"
_COT_SUBCODES = {
    "cot_missing": "empty response",
    "think_tags": "not exactly one <think> and one </think>",
    "think_order": "</think> before <think>",
    "answer_missing": "no <answer>…</answer> outside the think block",
    "too_short": "fewer words than distillation.cot.min_words",
}
_CAPTION_SUBCODES = {"missing": "empty caption", "too_short": "fewer words than distillation.caption.min_words"}

REGISTRY: tuple[Reason, ...] = (
    # collect
    Reason("collect", "missing_id", "the dump row has no id, so it has no sample_key", "mfr.stages.collect.split_quarantine", True),
    Reason("collect", "duplicate_key", "a second row with the same (source, id); the first in dump order stays",
           "mfr.stages.collect.split_quarantine", True),
    Reason("collect", "question_missing", "both question and ori_question are empty", "mfr.stages.collect.canonical_rows"),
    # clean
    Reason("clean", "question_empty", "nothing is left of the question after the text rules", "mfr.stages.clean.decide_rows"),
    Reason("clean", "image_missing", "no image, or an image_id with no stored bytes", _IMAGE),
    Reason("clean", "image_corrupt", "the bytes do not decode to a whole image (truncated, zero-sized, unknown)", _IMAGE),
    Reason("clean", "image_unsupported", "a vector, document or non-raster format", _IMAGE),
    Reason("clean", "image_too_large", "more pixels than cleaning.max_image_pixels (never decoded)", _IMAGE),
    Reason("clean", "pending_model", "needs translation and cleaning.llm_client is not set", "mfr.stages.clean.decide_rows"),
    Reason("clean", "llm_error", "the cleaning model gave no reply for a question that needs translation", "mfr.stages.clean.decide_rows",
           retried=True),
    Reason("clean", "unsuitable_task", "the cleaning model found a non-answer question (draw, code, incomplete)",
           "mfr.text.clean_reply.parse_clean_reply"),
    Reason("clean", "translation_failed", "the cleaning model's reply to a translation could not be parsed",
           "mfr.text.clean_reply.parse_clean_reply"),
    Reason("clean", "duplicate_sample", "same image and normalised question as a smaller sample_key (named in the detail)",
           "mfr.stages.clean.mark_duplicates"),
    Reason("clean", "near_duplicate", "a near copy of the row its cluster keeps: image near, question near, the same "
           "numbers and gold answer (the detail names the kept key, the cluster and the similarities)",
           "mfr.stages.near_duplicates.mark_near_duplicates"),
    Reason("clean", "benchmark_overlap", "the question overlaps an item of a configured benchmark: a shared n-gram, "
           "the whole of a short question, or a near image with a similar question (the detail names the benchmark, "
           "the item and the signal; every match is in mfr.contamination)", "mfr.stages.decontaminate.mark_contaminated"),
    # distill
    Reason("distill", "pending_model", "needs a CoT or caption and the teacher endpoint is not set (the detail names the key)",
           "mfr.stages.distill.purpose_results"),
    Reason("distill", "llm_error", "the teacher call failed after its retries (the detail holds the error)",
           "mfr.stages.distill.stored_state", retried=True),
    Reason("distill", "cot_invalid", "every CoT asked for was unusable", "mfr.text.cot.cot_problem",
           subcodes=_COT_SUBCODES, retried=True),
    Reason("distill", "cot_truncated", "the last CoT stopped at max_tokens (finish_reason length)", "mfr.stages.distill.stored_state",
           retried=True),
    Reason("distill", "caption_invalid", "every caption asked for was unusable", "mfr.stages.distill.result_problem",
           subcodes=_CAPTION_SUBCODES, retried=True),
    Reason("distill", "caption_truncated", "the last caption stopped at max_tokens", "mfr.stages.distill.stored_state", retried=True),
    # select
    Reason("select", "response_error", "the response contains selection.content.error_keyword", "mfr.filters.content_problem"),
    Reason("select", "cot_too_short", "fewer response words than selection.content.min_response_words", "mfr.filters.content_problem"),
    Reason("select", "caption_too_short", "fewer caption words than selection.content.min_caption_words", "mfr.filters.content_problem"),
    Reason("select", "think_structure", "not exactly one <think> before one </think>", "mfr.filters.structure_problem"),
    Reason("select", "answer_missing", "no <answer> pair outside the think block", "mfr.filters.structure_problem"),
    Reason("select", "ngram_repetition", "a word n-gram of the think part occurs selection.quality.ngram_freq times or more",
           "mfr.text.repetition.repetition_problem"),
    Reason("select", "answer_mismatch", "the gated verdict says the answer does not match the ground truth",
           "mfr.stages.select.decide"),
    Reason("select", "pass_rate_missing", "a difficulty threshold is set and the row has no pass rate", "mfr.stages.select.decide",
           retried=True),
    Reason("select", "too_easy", "pass_rate above selection.difficulty.threshold", "mfr.stages.select.decide"),
    # export
    Reason("export", "image_missing", "no stored image for the row", "mfr.export.sharegpt.sharegpt_record"),
    Reason("export", "question_missing", "the question is empty once image tags are removed", "mfr.export.sharegpt.user_turn"),
    Reason("export", "image_tag_count", "several <image> tags for one image", "mfr.export.sharegpt.user_turn"),
    Reason("export", "cot_unusable", "the trace has no usable think block and answer", "mfr.export.sharegpt.assistant_turn"),
    Reason("export", "caption_missing", "export.caption_in_answer is set and the row has no caption",
           "mfr.export.sharegpt.assistant_turn"),
)

_BY_KEY = {(r.stage, r.code): r for r in REGISTRY}


class UnknownReason(ValueError):
    """A stage produced (or asked for) a code that is not registered for it."""


def lookup(stage: str, name: str) -> Reason:
    try:
        return _BY_KEY[(stage, name)]
    except KeyError:
        raise UnknownReason(f"reason {name!r} is not registered for stage {stage!r} in mfr.reasons") from None


def code(stage: str, name: str) -> str:
    """``name`` when it is registered for ``stage``; UnknownReason otherwise."""
    return lookup(stage, name).code


def codes(stage: str, quarantine: bool = False) -> frozenset[str]:
    return frozenset(r.code for r in REGISTRY if r.stage == stage and r.quarantine == quarantine)


def retried(stage: str) -> frozenset[str]:
    """Codes of ``stage`` whose rows a rerun computes again although their input did not change."""
    return frozenset(r.code for r in REGISTRY if r.stage == stage and r.retried)


def unregistered(stage: str, found: Iterable[str | None], quarantine: bool = False) -> list[str]:
    """Codes in ``found`` (None = kept) that are not registered for ``stage``."""
    known = codes(stage, quarantine)
    return sorted(c for c in found if c is not None and c not in known)


def with_subcode(sub: str | None, detail: str | None = None) -> str | None:
    """``reject_detail`` carrying a sub-code: ``think_tags`` or ``think_tags: <detail>``."""
    if sub is None:
        return detail
    return f"{sub}: {detail}" if detail else sub


def markdown_table() -> str:
    lines = ["| stage | code | meaning | decided by |", "| --- | --- | --- | --- |"]
    for r in REGISTRY:
        meaning = r.meaning + (" (quarantined)" if r.quarantine else "")
        if r.subcodes:
            meaning += "; sub-codes in `reject_detail`: " + ", ".join(f"`{k}`" for k in r.subcodes)
        lines.append(f"| {r.stage} | `{r.code}` | {meaning.replace('|', '/')} | `{r.decided_by}` |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(markdown_table() + "\n")
