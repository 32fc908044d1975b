"""Stage 2 (clean) on Spark + Delta: rules, image cleaning, routing, the cleaning model, dedup."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image
from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage
from mfr.sample.synthetic import SCENARIOS
from tests.openai_server import OpenAIServer


def by_scenario(rows: list) -> dict[str, object]:
    """Rows of the synthetic dump keyed by their scenario (ids are 100000 + scenario index)."""
    out = {}
    for r in rows:
        i = r["id"] - 100000
        if i < len(SCENARIOS) and SCENARIOS[i] != "duplicate_key":
            out.setdefault(SCENARIOS[i], r)
    return out


@pytest.fixture
def collected(module_collected):
    """One collect per module: each test runs clean itself and reads the versions its own runs wrote."""
    return module_collected


def test_clean_without_a_model(spark, collected):
    r = run_stage(spark, collected, "clean")
    lh = Lakehouse(spark, collected)
    n_in = lh.read("collected").where(F.col("reject_reason").isNull()).count()
    assert r.rows_in == n_in == r.rows_kept + r.rows_rejected
    rows = lh.read("cleaned", r.output_version).collect()
    assert len(rows) == n_in
    s = by_scenario(rows)
    # rules
    assert "url_removed" in s["link"]["clean_actions"] and "http" not in s["link"]["question"]
    assert s["qnum"]["question"].startswith("<image>") and "Q12" not in s["qnum"]["question"]
    assert {"index_removed", "score_note_removed"} <= set(s["qnum"]["clean_actions"])
    assert "instruction_rewritten" in s["just_answer"]["clean_actions"] and "Just give" not in s["just_answer"]["question"]
    assert s["just_answer"]["question"].endswith("Reason through the problem step by step, then give the final answer.")
    assert "@" not in s["email_signature"]["question"]
    assert s["link"]["original_question"] != s["link"]["question"]  # the text before cleaning is kept
    # routing without an endpoint: untranslated questions never pass, other routes are kept and marked
    for name in ("zh", "mixed_language", "zh_just_answer"):
        assert s[name]["reject_reason"] == "pending_model" and "cleaning.llm_client" in s[name]["reject_detail"]
        assert s[name]["language"] == "zh"
    assert s["coding"]["reject_reason"] is None and "unconfirmed_task_check" in s["coding"]["clean_actions"]
    # images
    assert s["no_image"]["reject_reason"] == "image_missing"
    assert s["corrupt_image"]["reject_reason"] == "image_corrupt" and s["corrupt_image"]["reject_detail"]
    images = {x["image_id"]: x for x in lh.read("images").collect()}
    for name in ("rgba", "cmyk", "palette", "grey", "grey16", "large_jpeg", "large_png"):
        row = s[name]
        assert row["reject_reason"] is None and row["image_id"] != row["original_image_id"], name
        new = images[row["image_id"]]
        img = Image.open(io.BytesIO(new["bytes"]))
        assert img.mode == "RGB" and max(img.size) <= 2048 and (new["width"], new["height"]) == img.size
    assert max(images[s["large_jpeg"]["image_id"]]["width"], images[s["large_jpeg"]["image_id"]]["height"]) == 2048
    assert s["large_jpeg"]["image_id"] != s["large_png"]["image_id"]
    normal = [x for x in rows if x["id"] - 100000 >= len(SCENARIOS)]
    assert normal and all(x["image_id"] == x["original_image_id"] for x in normal)  # untouched bytes, same id
    # answers and duplicates
    assert s["empty_answer_boxed"]["answer"] and "answer_extracted" in s["empty_answer_boxed"]["clean_actions"]
    dup = s["cross_source_duplicate"]
    other = s["no_caption"]
    assert {dup["reject_reason"], other["reject_reason"]} == {"duplicate_sample", None}
    loser = dup if dup["reject_reason"] else other
    winner = other if loser is dup else dup
    assert loser["reject_detail"] == f"duplicate of {winner['sample_key']}"
    # the fraction counted from the rows themselves: routed questions and answers no rule could extract,
    # among rows whose text and image survived (they are what the model would be asked about)
    asked = [x for x in rows if x["reject_reason"] in (None, "pending_model", "duplicate_sample")
             and (x["clean_routes"] or "answer_unextracted" in x["clean_actions"])]
    assert asked and r.metrics["clean.llm_call_fraction"] == pytest.approx(len(asked) / r.rows_in)


def _cleaner(body, index, words):
    text = body["messages"][0]["content"][-1]["text"]
    if "worked solution" in text:
        return "<answer>7</answer>"  # the seed's protocol
    question = text.rsplit("Question:\n", 1)[1]
    if "直角三角形" in question:
        return '<think>Chinese.</think>```json\n{"error_type": ["translation"], "corrected_text": "In the right triangle, the legs are 3 and 4. Find the hypotenuse."}\n```'
    if "Python" in question:
        return json.dumps({"error_type": ["non-answer question"], "corrected_text": ""})
    if "黑色格子" in question:
        return "I am not sure what to do with this one."
    if "请给出" in question:
        return "Sorry, overloaded"  # unparseable
    return "No Problem"


@pytest.mark.slow  # the model path end to end (its rules: test_transforms' decide_rows tests); make test keeps the clean smoke test
def test_clean_with_the_model(spark, collected, tmp_path):
    with OpenAIServer(responder=_cleaner) as srv:
        cfg = collected.with_overrides([
            f"cleaning.llm_client.api_base={srv.url}", "cleaning.llm_client.model=cleaner",
            "cleaning.llm_client.backoff_base_s=0.01", "cleaning.llm_client.max_attempts=2",
        ])
        r = run_stage(spark, cfg, "clean")
        asked = len(srv.bodies)
    lh = Lakehouse(spark, cfg)
    rows = lh.read("cleaned", r.output_version).collect()
    s = by_scenario(rows)
    zh = s["zh"]
    assert zh["reject_reason"] is None and zh["question"].startswith("<image>In the right triangle")
    assert "llm_translation" in zh["clean_actions"] and "直角三角形" in zh["original_question"]
    assert s["coding"]["reject_reason"] == "unsuitable_task"
    assert s["zh_just_answer"]["reject_reason"] == "translation_failed"  # unparseable reply, still not English
    assert "llm_no_problem" in s["drawing"]["clean_actions"] and s["drawing"]["reject_reason"] is None
    # only routed rows and unfilled answers were sent: never the whole dump
    routed = sum(1 for x in rows if x["clean_routes"] and not (x["reject_reason"] or "").startswith("image_"))
    assert asked == routed  # the boxed answer was extracted by rule: nothing else to ask
    assert r.metrics["clean.llm_rows"] == routed
    # the run report of this run: its lineage, funnel and model-call figures
    from mfr.report import FIGURES, gather, write_report

    data = gather(spark, cfg, r.run_id)
    assert set(data.versions) == {"collect", "clean"} and data.versions["clean"]["run_id"] == r.run_id
    assert [x["purpose"] for x in data.llm] == ["clean"] and data.llm[0]["calls"] == asked
    assert data.funnel["clean"]["unsuitable_task"] == 1
    page = write_report(spark, cfg, r.run_id, tmp_path / "report")
    text = Path(page).read_text()
    for name in FIGURES:
        assert (tmp_path / "report" / name).stat().st_size > 5000 and f"src='{name}'" in text
    # a rerun asks nothing: stored replies are reused
    with OpenAIServer(responder=_cleaner) as srv:
        cfg2 = cfg.with_overrides([f"cleaning.llm_client.api_base={srv.url}"])
        again = run_stage(spark, cfg2, "clean")
        assert srv.bodies == []
    assert again.rows_kept == r.rows_kept


@pytest.mark.slow  # about a minute with its fixture: `make test-slow` (CI runs it)
def test_answer_extraction_by_model_and_reclean_from_originals(spark, collected):
    with OpenAIServer(responder=_cleaner) as srv:
        cfg = collected.with_overrides([
            f"cleaning.llm_client.api_base={srv.url}", "cleaning.llm_client.model=cleaner",
            "cleaning.input_column=original_question", "cleaning.clean_images=false", "cleaning.dedup=false",
        ])
        # an answer no rule can read: the model is asked
        lh = Lakehouse(spark, cfg)
        v = lh.current_version("collected")
        spark.sql(f"UPDATE {lh.name('collected')} SET answer = '', original_answer = 'It works out nicely.' "
                  f"WHERE id = {100000 + SCENARIOS.index('link')}")
        RunLog(lh).publish("collected", cfg)  # a hand correction becomes the next stage's input
        r = run_stage(spark, cfg, "clean")
        extraction = [b for b in srv.bodies if "worked solution" in b["messages"][0]["content"][-1]["text"]]
    rows = by_scenario(lh.read("cleaned", r.output_version).collect())
    assert lh.current_version("collected") == v + 1
    assert len(extraction) == 1 and rows["link"]["answer"] == "7"
    assert {"answer_extracted", "answer_by_model"} <= set(rows["link"]["clean_actions"])
    # input_column = original_question: the dump's original text is the one cleaned
    assert rows["link"]["question"] == rows["link"]["original_question"] and "http" not in rows["link"]["question"]
    assert rows["corrupt_image"]["reject_reason"] is None  # images untouched when clean_images is off
    with pytest.raises(ValueError, match="cleaning.input_column"):
        run_stage(spark, cfg.with_overrides(["cleaning.input_column=answer"]), "clean")


@pytest.mark.slow  # the real sample end to end is in the golden funnel too: `make test-slow`
def test_clean_on_the_real_sample(spark, make_cfg, real_sample):
    cfg = make_cfg(f"collection.source={real_sample}", "cleaning.input_column=original_question")
    run_stage(spark, cfg, "collect")
    r = run_stage(spark, cfg, "clean")
    assert r.rows_in == r.rows_kept + r.rows_rejected
    lh = Lakehouse(spark, cfg)
    rows = lh.read("cleaned", r.output_version).collect()
    zh = [x for x in rows if x["language"] == "zh"]
    assert zh and all(x["reject_reason"] == "pending_model" for x in zh)
    assert r.metrics["clean.llm_call_fraction"] < 0.25
    assert {x["reject_reason"] for x in rows if x["source"] == "MMR1"} == {"image_missing"}
    assert all(x["image_id"] == x["original_image_id"] for x in rows if x["image_id"])


@pytest.mark.slow  # a dump of hostile images through collect and clean: `make test-slow`
def test_hostile_dump_finishes_and_every_row_has_an_outcome(spark, make_cfg, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mfr.dump.layout import dump_arrow_schema
    from tests.test_clean_images import claimed_png, encode, noise
    from tests.test_clean_text import HOSTILE_TEXTS

    jpeg = encode(noise((600, 400)), "JPEG")
    images = [claimed_png(30000, 30000), b"<svg></svg>", b"", jpeg[: len(jpeg) // 2], b"\x00junk" * 50, None,
              encode(Image.new("I;16", (50, 50)), "PNG"), jpeg]
    questions = ([t[:30000] for t in HOSTILE_TEXTS] + [None, "<image>", "   ", "<image>直接写出答案。"])
    rows = []
    for i in range(max(len(images), len(questions))):
        img = images[i % len(images)]
        rows.append({
            "source": "hostile", "id": i, "ori_question": None, "original_answer": "\\boxed{" * 50,
            "question": questions[i % len(questions)], "answer": "" if i % 3 else None, "caption": None,
            "qwen3vl_235b_thinking_response": None, "pass_rate": None, "is_consistent": None,
            "consistency_analysis": None, "image": None if img is None else {"bytes": img, "path": None},
        })
    dump = tmp_path / "dump" / "hostile"
    dump.mkdir(parents=True)
    schema = dump_arrow_schema()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), dump / "train-00000-of-00001.parquet")
    cfg = make_cfg(f"collection.source={dump.parent}")
    c = run_stage(spark, cfg, "collect")
    r = run_stage(spark, cfg, "clean")
    assert c.rows_in == len(rows) and r.rows_in == c.rows_kept == r.rows_kept + r.rows_rejected
    out = Lakehouse(spark, cfg).read("cleaned", r.output_version).collect()
    known = {"image_missing", "image_corrupt", "image_unsupported", "image_too_large", "question_empty",
             "pending_model", "duplicate_sample", None}
    assert {x["reject_reason"] for x in out} <= known
    assert {"image_too_large", "image_unsupported", "image_corrupt", "image_missing"} <= {x["reject_reason"] for x in out}
