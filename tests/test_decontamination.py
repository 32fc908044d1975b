"""Benchmark decontamination: the signals as plain functions, the Spark step on small literal DataFrames, and
clean end to end with a benchmark folder (a shared run of words, a short question whole, a near image)."""

from __future__ import annotations

import json

import pytest

from mfr.dedup.contamination import DecontamRule, gram_keys, image_match, item_text, text_match_counts, whole_key

LONG = ("In the figure, triangle ABC is inscribed in the circle with centre O. Angle A is 40 degrees and angle B is "
        "60 degrees, and the chord BC is drawn. Using the inscribed angle theorem, find the measure of angle C.")


def test_a_shared_run_of_n_words_overlaps_whatever_the_spacing_case_and_width():
    reworded = "<image>Look closely:  " + LONG.upper().replace("60", "６０") + " Answer with a number."
    assert set(gram_keys(reworded, 13)) & set(gram_keys(LONG, 13))
    # twelve words in common are not a run of thirteen
    twelve = "triangle ABC is inscribed in the circle with centre O. Angle A"
    assert not set(gram_keys(twelve + " zebra quokka", 13)) & set(gram_keys(LONG, 13))
    assert gram_keys("too short to have a run", 13) == []


def test_a_row_states_an_items_numbers_or_it_is_another_item():
    from mfr.dedup.contamination import numbers_agree

    item = "Angle A is 40 degrees and angle B is 60 degrees. Find angle C."
    assert numbers_agree("angle a is 40 degrees, angle b 60: find angle c", item)
    assert not numbers_agree("angle a is 50 degrees, angle b 60: find angle c", item)  # the template, other numbers
    # the row carries the options in its text; the item keeps them apart
    assert numbers_agree(item + " Choices: A. 80 B. 70", item, item + " A. 80 B. 70")
    assert not numbers_agree(item + " Choices: A. 80 B. 90", item, item + " A. 80 B. 70")


def test_a_short_question_is_compared_whole_and_a_long_one_is_not():
    assert whole_key("<image>What is the value of x?", 13) == whole_key("what is the VALUE of x", 13)
    assert whole_key("What is the value of y?", 13) != whole_key("What is the value of x?", 13)
    assert whole_key(LONG, 13) is None and whole_key("", 13) is None
    assert whole_key("Find x.", 13, min_words=5) is None  # too short to say anything alone


def test_a_short_question_inside_an_items_question_and_options_is_one_of_its_runs():
    from mfr.dedup.contamination import run_keys

    item = item_text("Question: How many cells of the grid are black?", ["(A) 3", "(B) 4"])
    assert whole_key("<image>how many cells of the grid are black", 13, 5) in run_keys(item, 13, 5)
    assert whole_key("How many cells of the grid are white?", 13, 5) not in run_keys(item, 13, 5)
    assert run_keys("one two three four", 13, 5) == []


def test_an_items_text_is_its_question_and_options():
    assert item_text("Which is larger?", ["A. 3", "B. 4"]) == "Which is larger? A. 3 B. 4"
    assert item_text("Which?", "A. yes B. no") == "Which? A. yes B. no"
    assert item_text("Which?", None) == "Which?"


def test_a_text_match_needs_near_images_where_both_sides_have_one():
    rule = DecontamRule(image_bits=8)
    assert text_match_counts(item_has_image=False, row_has_image=True, bits=None, rule=rule)
    assert text_match_counts(item_has_image=True, row_has_image=False, bits=None, rule=rule)  # nothing to compare
    assert text_match_counts(item_has_image=True, row_has_image=True, bits=3, rule=rule)
    assert not text_match_counts(item_has_image=True, row_has_image=True, bits=20, rule=rule)  # a template's sibling
    assert text_match_counts(item_has_image=True, row_has_image=True, bits=20, rule=DecontamRule(text_needs_image=False))


def test_the_image_signal_needs_near_images_similar_questions_and_the_same_numbers():
    rule = DecontamRule(image_bits=8, question_jaccard=0.5)
    img, near, far = (0x0F0F, 0x00FF), (0x0F0E, 0x00FB), (~0x0F0F, ~0x00FF)
    question = "In the triangle shown, angle A is 40 degrees and angle B is 60 degrees. Find angle C."
    respaced = "in the triangle shown ,  angle A is 40 degrees and angle B is 60 degrees. find angle C"
    assert image_match(respaced, near, question, img, rule)[0]
    assert not image_match(respaced.replace("40", "50"), near, question, img, rule)[0]  # another item's numbers
    assert not image_match(respaced, far, question, img, rule)[0]
    assert not image_match("Describe the colours used in this figure.", near, question, img, rule)[0]
    assert image_match(respaced, None, question, img, rule) == (False, 0.0, None)


@pytest.mark.slow  # Spark jobs on literal DataFrames (~10 s)
def test_matches_by_each_signal_and_the_rejection_names_the_first(spark):
    from mfr.stages.decontaminate import benchmark_matches, first_matches

    short = "What is the value of x?"
    rows = spark.createDataFrame([
        ("r:long", "<image>" + LONG.lower(), None, None),
        ("r:short", short, None, None),
        ("r:short-img", short, 0x1234, 0x5678),
        ("r:image", "Angle A is 40 and angle B is 60 in the triangle; what is angle C", 0x0F0F, 0x00FF),
        ("r:clean", "How many apples are left after eating two of five?", None, None),
    ], "sample_key string, question string, phash long, dhash long")
    items = spark.createDataFrame([
        ("bench", "1", LONG, LONG + " A. 80 B. 70", False, None, None),
        ("bench", "2", "what is the value of x", "what is the value of x", False, None, None),
        ("pics", "7", "What is the value of x?", "What is the value of x?", True, ~0x1234, ~0x5678),
        ("pics", "9", "Angle A is 40 and angle B is 60 in the triangle: what is angle C?", "x", True, 0x0F0E, 0x00FB),
    ], "benchmark string, item_id string, question string, text string, has_image boolean, phash long, dhash long")
    got = {(r["sample_key"], r["benchmark"], r["item_id"], r["signal"])
           for r in benchmark_matches(rows, items, DecontamRule()).collect()}
    # the short question over another picture is not pics:7 (the images are far); without an image it is
    assert got == {("r:long", "bench", "1", "ngram"), ("r:short", "bench", "2", "whole"), ("r:short", "pics", "7", "whole"),
                   ("r:short-img", "bench", "2", "whole"), ("r:image", "pics", "9", "image")}
    firsts = {r["sample_key"]: json.loads(r["detail"]) for r in first_matches(
        spark.createDataFrame([("k", "pics", "9", "image", 0.6, 2), ("k", "bench", "3", "ngram", None, None)],
                              "sample_key string, benchmark string, item_id string, signal string, jaccard double, "
                              "image_bits int")).collect()}
    assert firsts == {"k": {"benchmark": "bench", "item_id": "3", "signal": "ngram"}}


def test_bad_benchmark_settings_are_one_line_naming_the_key(make_cfg):
    from mfr.stages.decontaminate import decontam_settings

    for sets, expect in [
        (['decontamination.benchmarks=[{name: a}]'], r"decontamination.benchmarks\[0\].path must be"),
        (['decontamination.benchmarks=[{path: /x, colour: red}]'], r"benchmarks\[0\]: unknown key\(s\) colour"),
        (['decontamination.benchmarks=[{path: /x/a}, {path: /y/a}]'], r"benchmarks\[1\]: a second benchmark named 'a'"),
        (["decontamination.ngram=0"], "decontamination.ngram must be at least 1"),
    ]:
        with pytest.raises(ValueError, match=expect):
            decontam_settings(make_cfg(*sets))


@pytest.mark.slow  # collect and clean of six rows, a benchmark folder read and fingerprinted (~30 s)
def test_clean_rejects_rows_a_benchmark_holds_and_lists_every_match(spark, make_cfg, tmp_path):
    """A benchmark folder in the dump's layout: a reworded long question (a 13-word run), a short question of an
    item without an image (whole), a short question over another picture (no match), and a re-encoded image with its
    question re-punctuated (image). Clean rejects exactly the three rows, names the item, and lists the matches
    in mfr.contamination; a missing benchmark folder or column stops clean before any write."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from mfr.lakehouse import Lakehouse
    from mfr.runner import run_stage
    from mfr.sample.synthetic import _arrow_table, generate_rows

    rows = [r for r in generate_rows(40) if r.image[0]][:5]
    rows[0].data["question"] = "<image>" + LONG
    rows[1].data["question"] = "<image>What is the value of x?"
    rows[2].data["question"] = "<image>What is the value of y?"
    rows[3].data["question"] = "<image>In the triangle shown, angle A is 40 degrees and angle B is 60 degrees. Find angle C."
    for r in rows:
        r.data["source"] = "synth"
    dump = tmp_path / "dump"
    (dump / "synth").mkdir(parents=True)
    pq.write_table(_arrow_table(rows), dump / "synth" / "train-00000-of-00001.parquet")

    def jpeg(data: bytes) -> bytes:
        buf = io.BytesIO()
        Image.open(io.BytesIO(data)).convert("RGB").save(buf, "JPEG", quality=80)
        return buf.getvalue()

    # no run of 13 words in common with row 3's question (Jaccard 0.6, the same numbers)
    image_q = "In the triangle shown, angle A measures 40 degrees and angle B is 60 degrees. Find angle C."
    items = [
        {"id": "mv-1", "question": "Look at the picture. " + LONG.upper(), "options": ["A. 80", "B. 70"], "image": None},
        {"id": "mv-2", "question": "what is the value of x", "options": None, "image": None},
        {"id": "mv-3", "question": "What is the value of y?", "options": None,
         "image": {"bytes": rows[4].image[0], "path": "other.png"}},
        {"id": "mv-4", "question": image_q, "options": None, "image": {"bytes": jpeg(rows[3].image[0]), "path": "a.jpg"}},
    ]
    bench = tmp_path / "mathvista"
    (bench / "testmini").mkdir(parents=True)
    schema = pa.schema([("id", pa.string()), ("question", pa.string()), ("options", pa.list_(pa.string())),
                        ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))])
    pq.write_table(pa.Table.from_pylist(items, schema), bench / "testmini" / "part-0.parquet")

    cfg = make_cfg(f"collection.source={dump}", f"decontamination.benchmarks=[{{name: MathVista, path: {bench}}}]")
    run_stage(spark, cfg, "collect")
    for bad, expect in [(f"[{{path: {tmp_path / 'nowhere'}}}]", "benchmark nowhere: dump path does not exist"),
                        (f"[{{path: {bench}, question: query}}]", "question column 'query' is missing")]:
        with pytest.raises(ValueError, match=expect):
            run_stage(spark, cfg.with_overrides([f"decontamination.benchmarks={bad}"]), "clean")
    result = run_stage(spark, cfg, "clean")
    lh = Lakehouse(spark, cfg)
    assert [r["version"] for r in lh.history("cleaned").collect()] == [0]  # the refused runs wrote nothing
    got = {r["sample_key"]: (r["reject_reason"], r["reject_detail"]) for r in lh.read("cleaned", result.output_version).collect()}
    keys = [f"synth:{r.data['id']}" for r in rows]
    rejected = {k: json.loads(v[1]) for k, v in got.items() if v[0] == "benchmark_overlap"}
    assert {k: (d["item_id"], d["signal"]) for k, d in rejected.items()} == {
        keys[0]: ("mv-1", "ngram"), keys[1]: ("mv-2", "whole"), keys[3]: ("mv-4", "image")}
    assert all(d["benchmark"] == "MathVista" for d in rejected.values())
    assert got[keys[2]][0] is None and got[keys[4]][0] is None
    listed = {(r["sample_key"], r["item_id"], r["signal"]) for r in lh.read("contamination").collect()}
    assert listed == {(keys[0], "mv-1", "ngram"), (keys[1], "mv-2", "whole"), (keys[3], "mv-4", "image")}
    assert result.metrics["decontam.rejected"] == 3.0 and result.metrics["decontam.items"] == 4.0


@pytest.mark.slow  # a Spark job on a literal DataFrame
def test_the_report_counts_near_duplicates_per_source_pair_and_overlaps_per_benchmark(spark):
    from mfr.report import ReportData, _clean_removals, _html

    cleaned = spark.createDataFrame([
        ("a:1", "a", None, None),
        ("b:7", "b", "near_duplicate", "near duplicate of a:1 (cluster a:1; Jaccard 0.91, image bits 3)"),
        ("c:2", "c", "near_duplicate", "near duplicate of a:1 (cluster a:1; Jaccard 0.88, image bits 5)"),
        ("c:3", "c", "benchmark_overlap", '{"benchmark":"MathVista","item_id":"12","signal":"ngram"}'),
        ("c:4", "c", "benchmark_overlap", '{"benchmark":"MathVista","item_id":"40","signal":"image","jaccard":0.6}'),
        ("a:5", "a", "benchmark_overlap", '{"benchmark":"MathVista","item_id":"41","signal":"ngram"}'),
        ("a:6", "a", "duplicate_sample", "duplicate of a:1"),
    ], "sample_key string, source string, reject_reason string, reject_detail string")
    pairs, overlap = _clean_removals(cleaned)
    assert pairs == [["a", "b", 1], ["a", "c", 1]]
    assert overlap == [["MathVista", "image", 1], ["MathVista", "ngram", 2]]
    page = _html(ReportData(title="t", near_dups=pairs, overlap=overlap))
    assert "<h2>Near duplicates</h2>" in page and "<td>MathVista</td><td>ngram</td><td>2</td>" in page
