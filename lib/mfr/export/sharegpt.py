"""One selected row → one LLaMA-Factory sharegpt record, or a reason it cannot be one.

LLaMA-Factory refuses a sample whose ``<image>`` placeholders (over all messages) differ from
``len(images)``. Every record here carries one image, so the user turn holds exactly one tag (added
at the front when the question has none) and any tag elsewhere (CoT, caption) is neutralised.
"""

from __future__ import annotations

from typing import Any

from mfr.text.cot import THINK_CLOSE, THINK_OPEN, parse_trace

IMAGE_TAG = "<image>"
NEUTRAL_TAG = "[image]"  # what a stray tag becomes in model text: readable, not a placeholder


def split_cot(cot: str | None) -> tuple[str, str] | None:
    """(think, written solution) of a ``<think>…</think>`` trace: the block's text and everything the
    teacher wrote after it, as written (the final-answer line and tag included; an explanatory answer has
    none). None when there is no usable structure or either part is empty."""
    trace = parse_trace(cot)
    if trace.problem or trace.think is None:
        return None
    think, solution = trace.think.strip(), trace.solution.strip()
    if not think or not solution:
        return None
    return think, solution


def user_turn(question: str | None) -> tuple[str | None, str | None]:
    """(content, None) with exactly one image tag, or (None, reason)."""
    if question is None or not question.replace(IMAGE_TAG, "").strip():
        return None, "question_missing"
    tags = question.count(IMAGE_TAG)
    if tags == 0:
        return IMAGE_TAG + question.strip(), None
    if tags == 1:
        return question.strip(), None
    return None, "image_tag_count"  # several tags for one image: which one is meant is unknowable


def assistant_turn(cot: str | None, caption: str | None = None, thinking: bool = True,
                   with_caption: bool = False) -> tuple[str | None, str | None]:
    """(content, None) or (None, reason). Thinking: ``<think>…</think>`` and the written solution after
    it, as the teacher wrote them (the caption, when asked, opening the think block); non-thinking: the
    written solution alone. Nothing of the solution is cut: it is most of what the student learns to write."""
    parts = split_cot(cot)
    if parts is None:
        return None, "cot_unusable"
    think, solution = parts
    if with_caption:
        if not caption or not caption.strip():
            return None, "caption_missing"
        think = f"{caption.strip()}\n\n{think}"
    think, solution = think.replace(IMAGE_TAG, NEUTRAL_TAG), solution.replace(IMAGE_TAG, NEUTRAL_TAG)
    if not thinking:
        return solution, None
    return f"{THINK_OPEN}\n{think}\n{THINK_CLOSE}\n\n{solution}", None


def sharegpt_record(question: str | None, cot: str | None, image_path: str | None, caption: str | None = None,
                    thinking: bool = True, with_caption: bool = False) -> tuple[dict[str, Any] | None, str | None]:
    if not image_path:
        return None, "image_missing"
    user, why = user_turn(question)
    if why:
        return None, why
    assistant, why = assistant_turn(cot, caption, thinking, with_caption)
    if why:
        return None, why
    images = [image_path]
    record: dict[str, Any] = {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}], "images": images}
    assert placeholder_count(record) == len(images)
    return record, None


def placeholder_count(record: dict[str, Any]) -> int:
    return sum(m["content"].count(IMAGE_TAG) for m in record["messages"])


def dataset_info_entry(file_name: str) -> dict[str, Any]:
    """A ``dataset_info.json`` entry for sharegpt records with images."""
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages", "images": "images"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"},
    }


def image_file_name(image_id: str, fmt: str | None) -> str:
    """``images/ab/<image_id>.<ext>``: two-level fan-out keeps folders small at 2M images."""
    ext = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff"}.get(
        (fmt or "").upper(), "bin")
    return f"images/{image_id[:2]}/{image_id}.{ext}"
