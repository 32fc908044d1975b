"""The reason registry: every code once, each decided by a function that exists, the README table in sync."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from mfr import reasons
from mfr.export.sharegpt import sharegpt_record
from mfr.filters import SelectionRules, content_problem, structure_problem
from mfr.image.clean import clean_image
from mfr.text.cot import cot_problem

README = Path(__file__).resolve().parents[1] / "README.md"


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("entry", reasons.REGISTRY, ids=lambda r: f"{r.stage}.{r.code}")
def test_each_code_is_decided_by_a_function_that_exists(entry: reasons.Reason) -> None:
    assert callable(_resolve(entry.decided_by))
    assert entry.stage in reasons.STAGES and re.fullmatch(r"[a-z_]+", entry.code) and entry.meaning


def test_codes_are_registered_once_per_stage() -> None:
    keys = [(r.stage, r.code) for r in reasons.REGISTRY]
    assert len(keys) == len(set(keys))


def test_unknown_codes_are_refused() -> None:
    with pytest.raises(reasons.UnknownReason, match="not registered for stage 'select'"):
        reasons.code("select", "image_corrupt")
    assert reasons.unregistered("select", {None, "too_easy", "made_up"}) == ["made_up"]
    assert reasons.unregistered("collect", {"duplicate_key"}, quarantine=True) == []
    assert reasons.unregistered("collect", {"duplicate_key"}) == ["duplicate_key"]  # a quarantine code, not a row's


def test_pure_deciders_give_each_case_its_registered_code() -> None:
    rules = SelectionRules(no_answer_check_sources=frozenset({"ai2d"}))
    long = " ".join(["w"] * 300)
    cases = [
        ("select", content_problem("[ERROR] x", "c", rules), "response_error"),
        ("select", content_problem("short", "c", rules), "cot_too_short"),
        ("select", content_problem(long, "short", rules), "caption_too_short"),
        ("select", structure_problem("<think>a</think><think>", "s", rules), "think_structure"),
        ("select", structure_problem("</think>a<think>", "s", rules), "think_structure"),
        ("select", structure_problem("<think>a</think>no tag", "s", rules), "answer_missing"),
        ("clean", clean_image(None).reject, "image_missing"),
        ("clean", clean_image(b"").reject, "image_missing"),
        ("clean", clean_image(b"not an image").reject, "image_corrupt"),
        ("clean", clean_image(b"<svg xmlns='http://www.w3.org/2000/svg'/>").reject, "image_unsupported"),
        ("export", sharegpt_record("<image>", "<think>t</think>a", "x")[1], "question_missing"),
        ("export", sharegpt_record("q", "<think>t</think>a", None)[1], "image_missing"),
        ("export", sharegpt_record("<image><image> What is x?", "<think>t</think>a", "p")[1], "image_tag_count"),
        ("export", sharegpt_record("q", "none", "p")[1], "cot_unusable"),
    ]
    for stage, got, expected in cases:
        assert (got, expected in reasons.codes(stage)) == (expected, True), (stage, expected)
    subcodes = reasons.lookup("distill", "cot_invalid").subcodes
    for text, expected in [("", "cot_missing"), ("<think>a", "think_tags"), ("</think>b<think>", "think_order"),
                           ("<think>a</think>b", "answer_missing"), ("<think>a</think><answer>1</answer>", "too_short")]:
        assert (cot_problem(text), expected in subcodes) == (expected, True), text


def test_readme_reason_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert reasons.markdown_table() in text, "README's reason table is stale: paste `python -m mfr.reasons` into it"


def test_with_subcode() -> None:
    assert reasons.with_subcode("think_tags") == "think_tags"
    assert reasons.with_subcode("too_short", "80 words") == "too_short: 80 words"
    assert reasons.with_subcode(None, "x") == "x"
