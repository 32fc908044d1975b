"""Stage 4 (select) on Spark + Delta: filter decisions, correctness gate, difficulty, subset views."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage
from tests.openai_server import OpenAIServer, default_responder


@pytest.fixture(scope="module")
def distilled(spark, module_collected):
    """Collect and distill (no endpoints) once per module: each test reads the select versions its own runs
    wrote; the one test that corrects the input (the judge's) comes last."""
    run_stage(spark, module_collected, "distill")
    return module_collected


def test_select_decisions_views_and_agreement(spark, distilled):
    r = run_stage(spark, distilled, "select")
    lh = Lakehouse(spark, distilled)
    kept_before = lh.read("distilled").where(F.col("reject_reason").isNull()).count()
    assert r.rows_in == kept_before == r.rows_kept + r.rows_rejected
    rows = {x["sample_key"]: x for x in lh.read("selected", r.output_version).collect()}
    reasons = {x["reject_reason"] for x in rows.values()}
    assert "ngram_repetition" in reasons  # the looping trace
    assert "answer_mismatch" in reasons  # the wrong answer
    looping = [x for x in rows.values() if x["repetition_reason"]]
    assert len(looping) == 1 and looping[0]["reject_reason"] == "ngram_repetition"
    wrong = [x for x in rows.values() if x["source_is_consistent"] is False]
    assert wrong and all(x["is_consistent"] is False and x["reject_reason"] == "answer_mismatch" for x in wrong)
    kept = [x for x in rows.values() if x["reject_reason"] is None]
    # the default gate (auto): the dump's label for the dump's own trace, ours for a distilled one
    gated = {k: x["source_is_consistent"] if x["cot_origin"] == "dump" and x["source_is_consistent"] is not None
             else x["mfr_is_consistent"] for k, x in rows.items()}
    assert kept and all(gated[x["sample_key"]] and x["pass_rate"] == x["source_pass_rate"] for x in kept)
    # the verdict a user filters on is the one that decided: never consistent beside answer_mismatch
    assert all(x["is_consistent"] == gated[k] for k, x in rows.items())
    assert not [k for k, x in rows.items() if x["is_consistent"] and x["reject_reason"] == "answer_mismatch"]
    assert {x["consistency_method"] for x in rows.values() if x["cot_origin"] == "dump" and x["source_is_consistent"] is not None} \
        == {"dump_label"}
    assert all(x["reject_reason"] == "answer_mismatch" for k, x in rows.items()
               if not gated[k] and not (x["content_reason"] or x["structure_reason"] or x["repetition_reason"]))
    # the published subsets, nested as in the paper
    n_sel = spark.table(lh.name("mmfr_selected")).count()
    n_hard = spark.table(lh.name("mmfr_hard")).count()
    n_hardest = spark.table(lh.name("mmfr_hardest")).count()
    assert n_sel == len(kept) and n_hard == sum(x["pass_rate"] < 1 for x in kept)
    assert n_hardest == sum(x["pass_rate"] == 0 for x in kept) and n_sel >= n_hard >= n_hardest
    assert r.metrics["consistency.labelled_rows"] == r.rows_in
    assert 0.9 <= r.metrics["consistency.agreement"] <= 1.0


@pytest.mark.slow  # the threshold and gate end to end (the rule itself: test_transforms' decide tests)
def test_gate_and_threshold(spark, distilled):
    r = run_stage(spark, distilled.with_overrides(["selection.difficulty.threshold=0.5"]), "select")
    lh = Lakehouse(spark, distilled)
    rows = lh.read("selected", r.output_version).collect()
    assert all(x["pass_rate"] <= 0.5 for x in rows if x["reject_reason"] is None)
    assert any(x["reject_reason"] == "too_easy" for x in rows)
    off = run_stage(spark, distilled.with_overrides(["selection.quality.consistency=false"]), "select")
    assert off.rows_kept > r.rows_kept
    with pytest.raises(ValueError, match="selection.difficulty.client.model"):
        run_stage(spark, distilled.with_overrides(["selection.difficulty.client.api_base=http://x/v1"]), "select")


def _responder(body, index, words):
    text = json.dumps(body["messages"])
    if "Reference answer" in text:
        return "Both name the same thing.\nJUDGMENT: EQUIVALENT"
    return default_responder(body, index, words)


@pytest.mark.slow  # the judge and the probe through a model server, end to end
def test_probe_with_n_samples_and_llm_judge(spark, distilled):
    lh = Lakehouse(spark, distilled)
    # a ground truth the rules cannot compare with any trace: only the judge can decide these rows
    spark.sql(f"UPDATE {lh.name('distilled')} SET answer = '$$' WHERE source = 'synth-charts' AND id % 10 = 7")
    RunLog(lh).publish("distilled", distilled)  # a hand correction becomes the next stage's input
    plain = run_stage(spark, distilled, "select")
    # undecided by the rules and with a ground truth to judge against (a blank answer is never sent)
    undecided = lh.read("selected", plain.output_version).where(
        F.col("mfr_is_consistent").isNull() & F.col("content_reason").isNull() & F.col("structure_reason").isNull()
        & F.col("repetition_reason").isNull() & (F.coalesce(F.trim("answer"), F.lit("")) != "")).count()
    assert undecided >= 1  # the judge path is exercised
    with OpenAIServer(responder=_responder) as srv:
        sets = []
        for sec, model in (("selection.difficulty", "small"), ("selection.verify", "judge")):
            sets += [f"{sec}.client.api_base={srv.url}", f"{sec}.client.model={model}", f"{sec}.client.backoff_base_s=0.01"]
        r = run_stage(spark, distilled.with_overrides(sets), "select")
        probes = [b for b in srv.bodies if b["model"] == "small"]
        judged = [b for b in srv.bodies if b["model"] == "judge"]
    rows = lh.read("selected", r.output_version).collect()
    assert len(judged) == undecided
    by_judge = [x for x in rows if x["mfr_consistency_method"] == "llm_judge"]
    assert len(by_judge) == undecided and all(x["mfr_is_consistent"] for x in by_judge)
    kept = [x for x in rows if x["reject_reason"] is None]
    probed = [x for x in kept if x["pass_rate"] is not None]
    assert probes and all(b["n"] == 4 for b in probes) and len(probes) == len(probed)
    # the stand-in small model always answers 42, so every probed row is in the hardest subset
    assert all(x["pass_rate"] == 0.0 for x in probed)
    assert spark.table(lh.name("mmfr_hardest")).count() == len(probed)
    # rows without a probe: the corrupt image (cleaning is not run here: an error, not a guess) and rows
    # without a ground truth (consistent by the seed's rule, but there is nothing to grade samples by: not asked)
    unprobed = {x["sample_key"] for x in kept} - {x["sample_key"] for x in probed}
    errors = lh.read("llm_calls").where((F.col("purpose") == "pass_rate") & (F.col("status") == "error")).collect()
    no_gold = {x["sample_key"] for x in kept if not (x["answer"] or "").strip()}
    assert no_gold  # the synthetic dump has rows without a ground truth that pass every other check
    assert unprobed == {e["sample_key"] for e in errors} | no_gold and all(e["error_kind"] == "bad_input" for e in errors)


def test_the_report_says_which_verdict_decided_and_how_ours_agrees_with_the_dump(spark):
    from mfr.report import ReportData, _html, _verdicts

    selected = spark.createDataFrame([
        ("A", True, True, "dump_label", True),     # agree
        ("A", False, True, "dump_label", False),   # ours accepts what the dump rejects: a false accept
        ("A", None, None, "free_form", False),     # undecided counts as not consistent: agrees with a "no"
        ("B", True, True, "exact", None),          # no label: not counted
        ("B", False, False, "exact", False),       # agree
    ], "source string, is_consistent boolean, mfr_is_consistent boolean, consistency_method string, source_is_consistent boolean")
    got = _verdicts(selected)
    assert got == {"A": {"labelled": 3, "agree": 2, "undecided": 1, "false_accepts": 1, "by_dump": 2},
                   "B": {"labelled": 1, "agree": 1, "undecided": 0, "false_accepts": 0, "by_dump": 0}}
    page = _html(ReportData(title="t", verdicts=got))
    assert "<h2>Answer check</h2>" in page and "dump_label" in page and "mfr_is_consistent" in page
    assert "<td>all</td><td>4</td><td>0.750</td><td>1</td><td>1</td><td>2</td>" in page
    assert _verdicts(selected.drop("mfr_is_consistent")) == {}  # a version from before the two verdicts were apart
