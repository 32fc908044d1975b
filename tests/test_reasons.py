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


def test_pure_deciders_return_only_registered_codes() -> None:
    rules = SelectionRules(no_answer_check_sources=frozenset({"ai2d"}))
    select_codes = reasons.codes("select")
    for response, caption in [("[ERROR] x", "c"), ("short", "c"), (" ".join(["w"] * 300), "short")]:
        assert content_problem(response, caption, rules) in select_codes
    for response in ["<think>a</think><think>", "</think>a<think>", "<think>a</think>no tag"]:
        assert structure_problem(response, "s", rules) in select_codes
    image_codes = reasons.codes("clean")
    for data in [None, b"", b"not an image", b"<svg xmlns='http://www.w3.org/2000/svg'/>"]:
        assert clean_image(data).reject in image_codes
    subcodes = reasons.lookup("distill", "cot_invalid").subcodes
    for text in ["", "<think>a", "</think>b<think>", "<think>a</think>b", "<think>a</think><answer>1</answer>"]:
        assert cot_problem(text) in subcodes
    export_codes = reasons.codes("export")
    for args in [("<image>", "<think>t</think>a", "x"), ("q", "<think>t</think>a", None), ("<image><image>", "x", "p"),
                 ("q", "none", "p")]:
        assert sharegpt_record(*args)[1] in export_codes


def test_readme_reason_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert reasons.markdown_table() in text, "README's reason table is stale: paste `python -m mfr.reasons` into it"


def test_with_subcode() -> None:
    assert reasons.with_subcode("think_tags") == "think_tags"
    assert reasons.with_subcode("too_short", "80 words") == "too_short: 80 words"
    assert reasons.with_subcode(None, "x") == "x"
