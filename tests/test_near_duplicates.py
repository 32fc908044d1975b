"""The near-duplicate Spark steps on small literal DataFrames: candidate pairs by band keys (hot buckets
by neighbours), the rule on each candidate, connected components, the kept row and the rejections."""

from __future__ import annotations

import pytest

from mfr.dedup.near import NearRule
from mfr.dedup.spark import NearDupSettings, candidate_pairs, clusters, components, near_pairs, rejections, with_templates
from mfr.stages.near_duplicates import apply_rejections

# the steps' Spark jobs take ~40 s cold: in make test-slow while make test has no minute to spare
pytestmark = pytest.mark.slow

ROWS = "sample_key string, question string, answer string, phash long, dhash long"
Q = ("In the figure, triangle ABC is inscribed in the circle with centre O. Angle A is 40 degrees and angle B is "
     "60 degrees, and the chord BC is drawn. Using the inscribed angle theorem, find the measure of angle C in degrees.")


def _keep(df, name):  # a test's lineage cut: the stage persists to its staging folder instead
    return df.localCheckpoint()


def _pairs(df) -> set[tuple[str, str]]:
    return {(r["a"], r["b"]) for r in df.collect()}


def test_components_join_chains_and_keep_other_groups_apart(spark):
    # a chain written from its far end (the smallest key last), and a separate pair
    chain = [(f"k{i:02d}", f"k{i + 1:02d}") for i in range(8, 0, -1)]
    edges = spark.createDataFrame([*chain, ("x1", "x2")], "a string, b string")
    labels, rounds = components(edges, _keep)
    got = {r["node"]: r["cluster"] for r in labels.collect()}
    assert got == {**{f"k{i:02d}": "k01" for i in range(1, 10)}, "x1": "x1", "x2": "x1"}
    assert rounds <= 5  # pointer jumping: a 9-node chain settles in a few rounds, not 8


def test_components_say_when_a_chain_is_longer_than_the_rounds_allow(spark):
    from mfr.dedup.spark import ComponentsDidNotConverge

    edges = spark.createDataFrame([(f"k{i:02d}", f"k{i + 1:02d}") for i in range(30)], "a string, b string")
    with pytest.raises(ComponentsDidNotConverge, match="max_rounds"):
        components(edges, _keep, max_rounds=1)


def test_candidates_pair_reworded_copies_and_a_crowded_band_pairs_neighbours_only(spark):
    rows = [
        ("a", Q, "80", 1, 1),
        ("b", Q.replace("In the figure", "As shown in the figure"), "80", 3, 3),
        ("c", "What is the capital city named on the map of the northern province?", "x", 5, 5),
    ]
    # a template question over 30 figures: a crowded bucket (max_bucket 5), paired by image-hash neighbours
    rows += [(f"t{i:02d}", "As shown in the figure, find the value of x.", None, i * 1000, i * 1000) for i in range(30)]
    df = spark.createDataFrame(rows, ROWS)
    got = _pairs(candidate_pairs(df, NearDupSettings(max_bucket=5, neighbours=2)))
    assert ("a", "b") in got
    assert not any("c" in p for p in got)
    template = {p for p in got if p[0].startswith("t")}
    # each template row meets at most its 2 neighbours per order (two orders, the same here): not 435 pairs
    assert ("t00", "t01") in template and ("t00", "t02") in template and ("t00", "t03") not in template
    assert len(template) <= 30 * 2


def test_each_candidate_is_decided_by_the_rule(spark):
    rows = spark.createDataFrame([
        ("a", Q, "80", 0b1010, 0b1010),
        ("b", Q.replace("find the measure", "find measure"), "80", 0b1011, 0b1011),  # re-worded, 1 bit apart: near
        ("c", Q, "80", -1, -1),  # the same question over another figure (64 bits apart): apart
        ("d", Q.replace("60", "70"), "70", 0b1010, 0b1010),  # other numbers: apart
        ("e", "Name the largest planet of the solar system shown here.", "Jupiter", None, None),
        ("f", "Name the largest planet of the solar system shown here.", "jupiter", None, None),  # no images: near
    ], ROWS)
    pairs = spark.createDataFrame([("a", "b"), ("a", "c"), ("a", "d"), ("e", "f")], "a string, b string")
    rows = with_templates(rows, NearRule().template_images)  # Q is asked of two images: no template
    got = {(r["a"], r["b"]): (round(r["jaccard"], 2), r["image_bits"]) for r in near_pairs(pairs, rows, NearRule()).collect()}
    assert set(got) == {("a", "b"), ("e", "f")}
    assert got[("a", "b")][1] == 1 and got[("e", "f")] == (1.0, None)


def test_a_question_asked_of_several_images_is_a_template_whose_figures_must_be_near_by_both_hashes(spark):
    chart = "<image>Which bar in the chart is the tallest? Options: A, B, C, D."
    far = -1  # all 64 bits set: 64 bits from 0
    rows = spark.createDataFrame([
        ("t1", chart, "B", 0, 0),
        ("t2", chart.upper().replace(" ", "  "), "B", 0b111, far),  # another chart: pHash 3 bits off, dHash far
        ("t3", chart, "B", 0b11, 0b1),  # a re-hosted copy of t1: both hashes within 2 bits
        ("t4", "Which bar in the chart is the tallest?  Options: A, B, C, D.", "B", far, far),
        ("u", chart, "B", None, None),  # no image: not one of the template's figures
        ("x", Q, "80", 0, 0), ("y", Q, "80", 0b111, far),  # a question asked of two images: either hash is enough
    ], ROWS)
    marked = with_templates(rows, 3)
    assert {r["sample_key"] for r in marked.where("template").collect()} == {"t1", "t2", "t3", "t4"}
    pairs = spark.createDataFrame([("t1", "t2"), ("t1", "t3"), ("t1", "t4"), ("x", "y")], "a string, b string")
    got = {(r["a"], r["b"]): r["image_bits"] for r in near_pairs(pairs, marked, NearRule()).collect()}
    assert got == {("t1", "t3"): 2, ("x", "y"): 3}  # the farther hash for the template, the closer one otherwise


def test_a_cluster_keeps_the_row_with_a_trace_then_the_preferred_source_then_the_smallest_key(spark):
    members = spark.createDataFrame([
        ("s1", "c", "mmr1", None), ("s2", "c", "fine", None), ("s3", "c", "mmr1", "<think>x</think>"),
        ("t1", "t", "mmr1", None), ("t2", "t", "fine", None),
        ("u1", "u", "mmr1", None), ("u2", "u", "mmr1", None),
    ], "sample_key string, cluster string, source string, cot_response string")
    pairs = spark.createDataFrame([("s1", "s2", 0.9, 2), ("s2", "s3", 0.85, 5), ("t1", "t2", 1.0, None), ("u1", "u2", 0.95, 0)],
                                  "a string, b string, jaccard double, image_bits int")
    got = {r["cluster_id"]: r for r in clusters(members, pairs, ["fine"]).collect()}
    assert {c: r["kept_key"] for c, r in got.items()} == {"c": "s3", "t": "t2", "u": "u1"}
    assert got["c"]["members"] == ["s1", "s2", "s3"] and got["c"]["sources"] == ["fine", "mmr1"]
    assert [(p["a"], p["b"]) for p in got["c"]["pairs"]] == [("s1", "s2"), ("s2", "s3")]

    details = {r["sample_key"]: r["detail"] for r in rejections(clusters(members, pairs, ["fine"]), pairs).collect()}
    assert set(details) == {"s1", "s2", "t1", "u2"}
    assert details["s1"] == "near duplicate of s3 (cluster c: question jaccard 0.90, image 2 bits apart)"
    assert details["t1"] == "near duplicate of t2 (cluster t: question jaccard 1.00)"


def test_rejections_apply_to_kept_rows_only(spark):
    out = spark.createDataFrame([("a", None, None), ("b", None, None), ("c", "truncated", "image_corrupt")],
                                "sample_key string, reject_detail string, reject_reason string")
    rejected = spark.createDataFrame([("b", "near duplicate of a"), ("c", "near duplicate of a")],
                                     "sample_key string, detail string")
    got = {r["sample_key"]: (r["reject_reason"], r["reject_detail"]) for r in apply_rejections(out, rejected).collect()}
    assert got == {"a": (None, None), "b": ("near_duplicate", "near duplicate of a"), "c": ("image_corrupt", "truncated")}


def test_clean_rejects_a_rehosted_copy_and_keeps_the_template_question_over_another_figure(spark, make_cfg, tmp_path):
    """End to end through collect and clean: a copy re-hosted under another source (JPEG re-encoded, the
    question re-spaced and re-cased) is rejected naming the row kept; the same question over another
    triangle, and the same triangle asked something else, stay; the cluster is in mfr.duplicate_clusters."""
    import copy
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    from mfr.lakehouse import Lakehouse
    from mfr.runner import run_stage
    from mfr.sample.synthetic import _arrow_table, generate_rows

    rows = generate_rows(40)
    original = copy.deepcopy([r for r in rows if r.data["source"] == "synth-geometry" and r.image[0]][5])
    # another figure: a grid (two synthetic triangles are within the 64-bit hashes' reach: README)
    other_figure = copy.deepcopy([r for r in rows if r.data["source"] == "synth-grids" and r.image[0]][5])
    other_figure.data.update(question=original.data["question"], answer=original.data["answer"], id=900001)
    rehosted = copy.deepcopy(original)
    buf = io.BytesIO()
    Image.open(io.BytesIO(original.image[0])).convert("RGB").save(buf, "JPEG", quality=85)
    rehosted.image = (buf.getvalue(), "copy.jpg")
    rehosted.data.update(source="mirror", id=1, question="<image>" + original.data["question"].replace("<image>", "").upper().replace(" ", "  "))
    other_question = copy.deepcopy(original)
    other_question.data.update(id=900002, question="<image>What is the area of the triangle shown?", answer="24")
    for subset, rows in (("synth-geometry", [original, other_figure, other_question]), ("mirror", [rehosted])):
        (tmp_path / subset).mkdir()
        for r in rows:
            r.data["source"] = subset
        pq.write_table(_arrow_table(rows), tmp_path / subset / "train-00000-of-00001.parquet")

    cfg = make_cfg(f"collection.source={tmp_path}", "cleaning.near_dup.enabled=true",
                   'cleaning.near_dup.source_priority=["synth-geometry"]')  # else "mirror:1", the smallest key, stays
    run_stage(spark, cfg, "collect")
    result = run_stage(spark, cfg, "clean")
    lh = Lakehouse(spark, cfg)
    got = {r["sample_key"]: (r["reject_reason"], r["reject_detail"]) for r in lh.read("cleaned", result.output_version).collect()}
    kept_key = f"synth-geometry:{original.data['id']}"
    assert got["mirror:1"][1].startswith(f"near duplicate of {kept_key} (cluster ")
    assert {k: v[0] for k, v in got.items() if k != "mirror:1"} == {kept_key: None, "synth-geometry:900001": None,
                                                                   "synth-geometry:900002": None}
    (cluster,) = lh.read("duplicate_clusters").where(f"run_id = '{result.run_id}'").collect()
    assert (cluster["kept_key"], cluster["members"], cluster["sources"]) == (kept_key, sorted([kept_key, "mirror:1"]),
                                                                          ["mirror", "synth-geometry"])
    assert result.metrics["near_dup.rejected"] == 1.0 and lh.read("image_fingerprints").count() >= 3
