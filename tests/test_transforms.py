"""Each named Spark step on small literal DataFrames: input rows in, expected rows out (chispa-style)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mfr.lakehouse import LLM_CALLS_SCHEMA
from mfr.stages.clean import mark_duplicates
from mfr.stages import collect as collect_stage
from mfr.stages.collect import split_quarantine
from mfr.stages.distill import stored_state
from mfr.stages.export import rl_split
from mfr.stages.select import decide

pytestmark = pytest.mark.compat  # the Spark steps on small DataFrames: what a Spark line changes shows here


def rows(df: DataFrame, *cols: str) -> list[tuple[Any, ...]]:
    """The rows of ``df`` as sorted tuples of ``cols`` (order-free equality; None sorts first)."""
    return sorted((tuple(r[c] for c in cols) for r in df.select(*cols).collect()),
                  key=lambda t: tuple((v is not None, v) for v in t))


def test_mark_duplicates_keeps_the_smallest_key_and_names_it(spark) -> None:
    df = spark.createDataFrame(
        [
            ("b:1", "img1", "<image>What is  the Area?", None, None),
            ("a:9", "img1", "what is the area?", None, None),        # same after folding: a:9 < b:1 stays
            ("c:1", "img1", "What is the area?", "image_corrupt", "bad"),  # rejected already: untouched
            ("d:1", "img2", "What is the area?", None, None),        # another image: not a duplicate
            ("e:1", None, "Count.", None, None),
            ("e:2", None, "count.", None, None),                     # no image on both: the text decides
        ],
        "sample_key string, image_id string, question string, reject_reason string, reject_detail string",
    )
    out = mark_duplicates(df)
    assert rows(out, "sample_key", "reject_reason", "reject_detail") == [
        ("a:9", None, None),
        ("b:1", "duplicate_sample", "duplicate of a:9"),
        ("c:1", "image_corrupt", "bad"),
        ("d:1", None, None),
        ("e:1", None, None),
        ("e:2", "duplicate_sample", "duplicate of e:1"),
    ]


@pytest.mark.parametrize("small", [True, False], ids=["few-duplicates", "many-duplicates"])
def test_split_quarantine_sends_missing_ids_and_later_duplicates_away(spark, monkeypatch, small) -> None:
    if not small:  # the paths taken for many duplicated keys: a shuffled join, no pruning by id
        monkeypatch.setattr(collect_stage, "_BROADCAST_KEYS", 0)
        monkeypatch.setattr(collect_stage, "_PRUNE_IDS", 0)
    df = spark.createDataFrame(
        [
            ("s:1", "s", 1, "f1", 0, "first"),
            ("s:1", "s", 1, "f1", 5, "second"),   # same key later in the dump: quarantined
            ("s:1", "s", 1, "f0", 9, "zeroth"),   # an earlier file wins over row position
            ("s:", "s", None, "f1", 1, "no id"),
            ("s:2", "s", 2, "f1", 2, "fine"),
        ],
        "sample_key string, source string, id long, source_file string, source_row long, question string",
    )
    # the subset is the file's folder here: both files hold a row of the duplicated key, so both are named
    df = df.withColumn("subset", F.concat(F.lit("in-"), F.col("source_file")))
    kept, quarantine, dup_keys, subsets = split_quarantine(df)
    assert dup_keys == 1 and subsets == {"in-f0", "in-f1"}
    assert rows(kept, "sample_key", "question") == [("s:1", "zeroth"), ("s:2", "fine")]
    assert quarantine is not None
    assert rows(quarantine, "sample_key", "reason") == [(None, "missing_id"), ("s:1", "duplicate_key"), ("s:1", "duplicate_key")]
    assert all('"question"' in r["raw_record"] for r in quarantine.collect())


def test_split_quarantine_without_problems_returns_no_quarantine(spark) -> None:
    df = spark.createDataFrame([("s:1", "s", 1, "f", 0)], "sample_key string, source string, id long, source_file string, "
                                                          "source_row long").withColumn("subset", F.lit("a"))
    kept, quarantine, dup_keys, subsets = split_quarantine(df)
    assert quarantine is None and dup_keys == 0 and subsets == set() and kept.count() == 1


def test_rl_split_is_seeded_and_keeps_source_proportions(spark) -> None:
    df = spark.createDataFrame([(f"a:{i}", "a") for i in range(10)] + [(f"b:{i}", "b") for i in range(5)],
                               "sample_key string, source string")
    marked, quotas = rl_split(df, 3, seed=7)
    assert quotas == {"a": 2, "b": 1}
    chosen = [r for r in rows(marked, "sample_key", "source", "_rl") if r[2]]
    assert sorted(r[1] for r in chosen) == ["a", "a", "b"]
    again, _ = rl_split(df, 3, seed=7)
    assert rows(again, "sample_key", "_rl") == rows(marked, "sample_key", "_rl")
    other_seeds = {tuple(rows(rl_split(df, 3, seed=s)[0].where("_rl"), "sample_key")) for s in range(5)}
    assert len(other_seeds) > 1  # the seed matters
    none, q = rl_split(df, None, seed=7)
    assert q == {} and none.where("_rl").count() == 0


def _call(key: str, index: int, status: str, text: str | None = None, finish: str | None = "stop",
          error: str | None = None, minute: int = 0) -> tuple:
    choices = [(text, finish)] if text is not None else None
    values = {"request_key": f"{key}#{index}#{minute}", "sample_key": key, "purpose": "caption", "model": "m",
              "prompt_version": "p@1", "sample_index": index, "status": status, "attempts": 1, "finish_reason": finish,
              "choices": choices, "prompt_tokens": 1, "completion_tokens": 9, "latency_s": 0.1, "endpoint": "e",
              "error_kind": None, "error": error, "run_id": "r", "created_at": dt.datetime(2026, 1, 1, 0, minute)}
    return tuple(values[f.name] for f in LLM_CALLS_SCHEMA.fields)


def test_stored_state_picks_the_first_valid_answer_and_the_last_outcome(spark) -> None:
    calls = spark.createDataFrame(
        [
            _call("ok", 0, "ok", "too short"),                         # invalid (3 words < 4)
            _call("ok", 1, "ok", "a caption of enough words"),          # the valid one
            _call("ok", 2, "ok", "another caption of enough words"),   # valid too, but a later index
            _call("err", 0, "error", error="HTTP 500", finish=None),
            _call("cut", 0, "ok", "a caption cut at the limit", finish="length"),
            _call("bad", 0, "ok", "short", minute=1),
            _call("bad", 1, "error", error="timeout", finish=None, minute=2),
        ],
        LLM_CALLS_SCHEMA,
    )
    state = stored_state(calls, "caption", 4).select(
        "sample_key", "_best.sample_index", "_best._text", "_next_index", "_last.reason", "_last.error")
    assert rows(state, *state.columns) == [
        ("bad", None, None, 1, "llm_error", "timeout"),
        ("cut", None, None, 1, "caption_truncated", "finish_reason length after 9 tokens"),
        ("err", None, None, 0, "llm_error", "HTTP 500"),
        ("ok", 1, "a caption of enough words", 3, None, None),
    ]



def test_a_trace_without_an_answer_tag_is_valid_only_for_the_no_answer_check_sources(spark) -> None:
    trace = "<think>" + "thinking " * 120 + "</think>A written explanation with no tag."
    calls = spark.createDataFrame([_call("exempt", 0, "ok", trace), _call("plain", 0, "ok", trace)], LLM_CALLS_SCHEMA)
    sources = spark.createDataFrame([("exempt", "LLaVA-CoT-100k"), ("plain", "MMR1")], "sample_key string, source string")
    state = stored_state(calls.join(sources, "sample_key"), "cot", 100, frozenset({"LLaVA-CoT"})).select(
        "sample_key", "_best.sample_index", "_last.reason", "_last.error")
    assert rows(state, *state.columns) == [("exempt", 0, None, None), ("plain", None, "cot_invalid", "answer_missing")]


@pytest.fixture
def checked(spark) -> DataFrame:
    schema = ("sample_key string, content_reason string, structure_reason string, repetition_reason string, "
              "is_consistent boolean, consistency_analysis string, source_is_consistent boolean, "
              "source_consistency_analysis string, pass_rate double, cot_origin string")
    return spark.createDataFrame(
        [
            ("content", "cot_too_short", "think_structure", None, False, "x", False, "y", 1.0, "dump"),
            ("structure", None, "answer_missing", "ngram_repetition", False, "x", False, "y", 1.0, "dump"),
            ("repeats", None, None, "ngram_repetition", False, "x", True, "y", 0.0, "dump"),
            ("mismatch", None, None, None, False, "gold 1 vs predicted 2", True, "dump says yes", 0.0, "dump"),
            ("undecided", None, None, None, None, None, True, "dump says yes", 0.0, "distilled"),
            ("easy", None, None, None, True, "ok", True, "ok", 1.0, "distilled"),
            ("no_rate", None, None, None, True, "ok", True, "ok", None, "dump"),
            ("hard", None, None, None, True, "ok", False, "dump says no", 0.25, "dump"),
            ("unlabelled", None, None, None, False, "ours says no", None, None, 0.0, "dump"),
        ],
        schema,
    )


def test_decide_follows_the_seeds_order(checked) -> None:
    out = decide(checked, gate="computed", consistency=True, threshold=0.5)
    assert rows(out, "sample_key", "reject_reason", "reject_detail") == [
        ("content", "cot_too_short", None),
        ("easy", "too_easy", "pass_rate 1.0 > threshold 0.5"),
        ("hard", None, None),
        ("mismatch", "answer_mismatch", "gold 1 vs predicted 2"),
        ("no_rate", "pass_rate_missing", None),
        ("repeats", "ngram_repetition", None),
        ("structure", "answer_missing", None),
        ("undecided", "answer_mismatch", None),  # undecided by rules and no judge: not consistent
        ("unlabelled", "answer_mismatch", "ours says no"),
    ]


def test_auto_gate_uses_the_dumps_label_only_for_the_dumps_own_trace(checked) -> None:
    out = decide(checked, gate="auto", consistency=True, threshold=None)
    assert rows(out.where("reject_reason IS NULL OR reject_reason = 'answer_mismatch'"), "sample_key", "reject_reason", "reject_detail") == [
        ("easy", None, None),                                # distilled: our verdict (consistent)
        ("hard", "answer_mismatch", "dump says no"),         # the dump's trace: the dump's label
        ("mismatch", None, None),                            # the dump's trace labelled consistent by the dump
        ("no_rate", None, None),
        ("undecided", "answer_mismatch", None),              # distilled: ours (undecided, no judge)
        ("unlabelled", "answer_mismatch", "ours says no"),  # the dump's trace without a label: ours
    ]


def test_decide_with_the_dumps_labels_and_no_difficulty(checked) -> None:
    out = decide(checked, gate="source", consistency=True, threshold=None)
    got = dict(rows(out, "sample_key", "reject_reason"))
    assert got["mismatch"] is None and got["undecided"] is None and got["easy"] is None and got["no_rate"] is None
    assert rows(out.where("sample_key = 'hard'"), "reject_reason", "reject_detail") == [("answer_mismatch", "dump says no")]
    off = dict(rows(decide(checked, gate="computed", consistency=False, threshold=None), "sample_key", "reject_reason"))
    assert off["mismatch"] is None and off["content"] == "cot_too_short"


def test_the_written_verdict_is_the_one_that_decided_with_ours_beside_it(checked) -> None:
    from pyspark.sql import functions as F

    from mfr.stages.select import verdict_columns

    with_method = checked.withColumn("consistency_method", F.when(F.col("is_consistent").isNull(), "undecided").otherwise("exact"))
    out = decide(with_method, gate="auto", consistency=True, threshold=None)
    written = out.select("sample_key", *verdict_columns("auto"), "reject_reason")
    got = {r["sample_key"]: r for r in written.collect()}
    # the dump's own trace with the dump's label: that label decided (ours differs, and is kept beside it)
    assert (got["mismatch"]["is_consistent"], got["mismatch"]["consistency_method"], got["mismatch"]["consistency_analysis"]) \
        == (True, "dump_label", "dump says yes")
    assert (got["mismatch"]["mfr_is_consistent"], got["mismatch"]["mfr_consistency_analysis"]) == (False, "gold 1 vs predicted 2")
    assert (got["hard"]["is_consistent"], got["hard"]["mfr_is_consistent"], got["hard"]["reject_reason"]) == (False, True, "answer_mismatch")
    # a distilled trace, or a dump trace without a label: ours decided, in both places
    assert (got["easy"]["is_consistent"], got["easy"]["consistency_method"], got["easy"]["mfr_consistency_method"]) == (True, "exact", "exact")
    assert (got["undecided"]["is_consistent"], got["undecided"]["consistency_method"]) == (None, "undecided")
    assert (got["unlabelled"]["is_consistent"], got["unlabelled"]["consistency_analysis"]) == (False, "ours says no")
    # never a positive verdict beside answer_mismatch, under any gate
    for gate in ("auto", "computed", "source"):
        decided = decide(with_method, gate=gate, consistency=True, threshold=None).select(*verdict_columns(gate), "reject_reason")
        assert decided.where("is_consistent AND reject_reason = 'answer_mismatch'").count() == 0


def _info_pairs(spark, samples: list[bytes | None]) -> tuple[dict, dict]:
    """(image_info_col's answers, the Python reader's answers on the whole bytes), by sample index."""
    from mfr.image.info import image_info
    from mfr.udfs import image_info_col

    df = spark.createDataFrame([(i, b) for i, b in enumerate(samples)], "i int, b binary")
    got = {r["i"]: (r["info"]["width"], r["info"]["height"], r["info"]["format"]) if r["info"]["format"] else None
           for r in df.select("i", image_info_col("b").alias("info")).collect()}
    expected = {i: tuple(image_info(b)) if image_info(b) else None for i, b in enumerate(samples)}
    return got, expected


def test_image_info_col_reads_png_headers_in_the_jvm_and_agrees_with_the_python_reader(spark) -> None:
    import io

    from PIL import Image

    from mfr.udfs import HEADER_BYTES

    def encoded(mode: str, size: tuple[int, int], fmt: str, **opts) -> bytes:
        buf = io.BytesIO()
        Image.effect_noise(size, 40).convert(mode).save(buf, fmt, **opts)
        return buf.getvalue()

    big_png = encoded("RGB", (3000, 20), "PNG")
    jpeg = encoded("RGB", (64, 48), "JPEG")
    app0_end = 4 + int.from_bytes(jpeg[4:6], "big")  # SOI (2 bytes), then APP0 at 2: marker, length
    twelve_bit = bytearray(jpeg)
    sof = next(i for i in range(2, len(jpeg) - 1) if jpeg[i] == 0xFF and jpeg[i + 1] == 0xC0)
    twelve_bit[sof + 4] = 12  # a frame PIL cannot open
    samples = [
        encoded("RGB", (40, 30), "PNG"), encoded("L", (1, 70000), "PNG"), big_png[: len(big_png) // 2],
        encoded("RGB", (5, 7), "JPEG"), encoded("P", (9, 4), "GIF"), encoded("RGB", (3, 2), "WEBP"),
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 8,  # a PNG signature and nothing readable after it
        b"not an image at all", b"", None,
        # JPEGs (read from a prefix first): a large EXIF block before the frame (read again whole),
        # progressive, grey, CMYK, fill bytes before a marker, junk between segments, a 12-bit frame, cut
        # before the frame, a multi-picture (MPO) file
        encoded("RGB", (64, 64), "JPEG", exif=b"Exif\x00\x00" + bytes(3 * HEADER_BYTES)),
        encoded("RGB", (33, 17), "JPEG", progressive=True), encoded("L", (8, 300), "JPEG"),
        encoded("CMYK", (12, 10), "JPEG"),
        jpeg[:app0_end] + b"\xff\xff\xff" + jpeg[app0_end:], jpeg[:app0_end] + b"junk" + jpeg[app0_end:],
        bytes(twelve_bit), jpeg[:sof],
        encoded("RGB", (20, 10), "MPO", save_all=True, append_images=[Image.new("RGB", (20, 10))]),
        # a GIF whose header is not within the prefix sent to Python first (a long comment before the frame)
        encoded("P", (6, 5), "GIF", comment=b"c" * (3 * HEADER_BYTES)),
    ]
    got, expected = _info_pairs(spark, samples)
    assert got == expected
    assert got[1] == (1, 70000, "PNG") and got[3] == (5, 7, "JPEG") and got[7] is None
    assert got[10] == (64, 64, "JPEG") and got[13] == (12, 10, "JPEG") and got[16] is None and got[17] is None
    assert got[18][2] == "MPO" and got[19] == (6, 5, "GIF")


def test_image_info_col_agrees_with_the_python_reader_on_the_real_dump(spark, real_sample) -> None:
    import pyarrow.parquet as pq

    samples = [(v or {}).get("bytes") for shard in sorted(real_sample.glob("*/*.parquet"))
               for v in pq.read_table(shard, columns=["image"]).column("image").to_pylist()]
    got, expected = _info_pairs(spark, samples)
    assert got == expected and sum(v is not None for v in got.values()) >= 90


_STAGED = (
    "sample_key string, answer string, image_id string, "
    "_q struct<routes: array<string>, language: string, actions: array<string>>, _text string, _before string, "
    "_reply struct<parsed: boolean, no_problem: boolean, unsuitable: boolean, error_types: array<string>, "
    "corrected_text: string>, _rule_answer string, _model_answer string, _need_answer boolean, new_image_id string, "
    "_image_reject string, _image_detail string, _image_actions array<string>"
)


def _staged_row(key: str, *, routes=(), text="<image>Find x.", reply=None, answer="3", rule=None, model=None,
                need=False, image_reject=None, image_detail=None) -> tuple:
    return (key, answer, "img", (list(routes), "en", ["rule"]), text, "<image>Find x.", reply, rule, model, need,
            None if image_reject else "img2", image_reject, image_detail, None)


def _reply(parsed=True, no_problem=False, unsuitable=False, errors=(), corrected=None) -> tuple:
    return (parsed, no_problem, unsuitable, list(errors), corrected)


def test_clean_decide_rows_puts_the_question_then_the_image_then_the_models_verdict(spark) -> None:
    from mfr.stages.clean import decide_rows

    staged = spark.createDataFrame([
        _staged_row("empty", text="  ", image_reject="image_corrupt", routes=["translation"]),  # empty question first
        _staged_row("image", image_reject="image_corrupt", image_detail="truncated", routes=["translation"]),
        _staged_row("untranslated", routes=["translation"]),                   # no reply: the call failed
        _staged_row("unsuitable", routes=["task_check"], reply=_reply(unsuitable=True, errors=["non-answer question"])),
        _staged_row("garbled", routes=["translation"], reply=_reply(parsed=False)),
        _staged_row("garbled_instruction", routes=["instruction"], reply=_reply(parsed=False)),  # kept, rule text stays
        _staged_row("translated", routes=["translation"],
                    reply=_reply(errors=["translation"], corrected="Find the hypotenuse.")),
        _staged_row("fine", routes=["task_check"], reply=_reply(no_problem=True)),
        _staged_row("no_route"),
    ], _STAGED)
    out = {r["sample_key"]: r for r in decide_rows(staged, ["sample_key", "answer", "image_id"], model_configured=True).collect()}
    assert {k: r["reject_reason"] for k, r in out.items()} == {
        "empty": "question_empty", "image": "image_corrupt", "untranslated": "llm_error", "unsuitable": "unsuitable_task",
        "garbled": "translation_failed", "garbled_instruction": None, "translated": None, "fine": None, "no_route": None}
    assert out["image"]["reject_detail"] == "truncated" and out["image"]["image_id"] is None
    assert out["translated"]["question"] == "<image>Find the hypotenuse."  # the leading tag survives the rewrite
    assert out["garbled_instruction"]["question"] == "<image>Find x." and "llm_unparseable" in out["garbled_instruction"]["clean_actions"]
    assert out["translated"]["clean_actions"] == ["rule", "llm_translation"]
    assert out["fine"]["clean_actions"] == ["rule", "llm_no_problem"] and out["no_route"]["clean_actions"] == ["rule"]
    assert out["no_route"]["original_image_id"] == "img" and out["no_route"]["image_id"] == "img2"


def test_clean_decide_rows_without_a_model_holds_back_only_translations(spark) -> None:
    from mfr.stages.clean import decide_rows

    staged = spark.createDataFrame([
        _staged_row("zh", routes=["translation"]),
        _staged_row("shallow", routes=["instruction"]),
        _staged_row("by_rule", answer="", need=True, rule="7"),
        _staged_row("by_model", answer="", need=True, model="8"),
        _staged_row("unread", answer="", need=True),
    ], _STAGED)
    out = {r["sample_key"]: r for r in decide_rows(staged, ["sample_key", "answer", "image_id"], model_configured=False).collect()}
    assert (out["zh"]["reject_reason"], out["shallow"]["reject_reason"]) == ("pending_model", None)
    assert "cleaning.llm_client" in out["zh"]["reject_detail"]
    assert out["shallow"]["clean_actions"] == ["rule", "unconfirmed_instruction"]
    assert (out["by_rule"]["answer"], out["by_rule"]["clean_actions"][-1:]) == ("7", ["answer_extracted"])
    assert (out["by_model"]["answer"], out["by_model"]["clean_actions"][-2:]) == ("8", ["answer_extracted", "answer_by_model"])
    assert (out["unread"]["answer"], out["unread"]["clean_actions"][-1:]) == (None, ["answer_unextracted"])


def test_distill_purpose_results_without_an_endpoint_are_pending_only_where_needed(spark) -> None:
    from types import SimpleNamespace

    from mfr.stages.distill import purpose_results

    rows_ = spark.createDataFrame([("needs", True), ("has_one", False)], "sample_key string, _cot_needs boolean")
    p = SimpleNamespace(name="cot", settings=None, missing="set distillation.cot.client.api_base")
    out = purpose_results(None, rows_, p)  # type: ignore[arg-type]  # no endpoint: nothing is read
    assert rows(out, "sample_key", "_cot_text", "_cot_reason", "_cot_detail", "_cot_key") == [
        ("has_one", None, None, None, None), ("needs", None, "pending_model", "set distillation.cot.client.api_base", None)]
