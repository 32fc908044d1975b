"""Stage 1 (collect) on real Spark + Delta: the synthetic dump, the real sample, bad input, time travel."""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from mfr.dump.layout import DumpError
from mfr.keys import sample_key
from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage
from mfr.stages.collect import OUTPUT_COLUMNS
from mfr.storage import StorageError


def _collect(spark, make_cfg, source, *overrides):
    cfg = make_cfg(f"collection.source={source}", *overrides)
    return cfg, run_stage(spark, cfg, "collect")


def test_collect_synthetic_dump(spark, make_cfg, synthetic_dump):
    cfg, r = _collect(spark, make_cfg, synthetic_dump)
    lh = Lakehouse(spark, cfg)
    assert (r.rows_in, r.rows_kept, r.rows_rejected, r.rows_quarantined) == (90, 88, 1, 1)
    df = lh.read("collected", r.output_version)
    assert df.columns == OUTPUT_COLUMNS
    rows = [x.asDict() for x in df.collect()]
    assert len(rows) == 89
    for x in rows:
        assert x["sample_key"] == sample_key(x["source"], x["id"])
        assert x["run_id"] == r.run_id
    assert len({x["sample_key"] for x in rows}) == len(rows)
    rejected = [x for x in rows if x["reject_reason"]]
    assert [x["reject_reason"] for x in rejected] == ["question_missing"]
    # images: content-addressed, stored once, every referenced id present
    ids = {x["image_id"] for x in rows if x["image_id"]}
    assert all(re.fullmatch(r"[0-9a-f]{64}", i) for i in ids)
    assert sum(1 for x in rows if x["image_id"] is None) == 1
    images = lh.read("images")
    assert images.count() == images.select("image_id").distinct().count()
    stored = {x["image_id"] for x in images.select("image_id").collect()}
    assert ids <= stored
    # the truncated image keeps a readable header: collect stores it as it is, cleaning judges it
    assert images.where(F.col("width").isNull()).count() == 0
    big = images.where((F.col("width") > 2048) | (F.col("height") > 2048)).count()
    assert big == 2
    # provenance and dump labels
    with_cot = [x for x in rows if x["cot_response"]]
    assert with_cot and all(x["cot_origin"] == "dump" and x["cot_model"] for x in with_cot)
    assert all(x["cot_model"] is None for x in rows if not x["cot_response"])
    assert {x["source_pass_rate"] for x in rows} <= {0.0, 0.25, 0.5, 0.75, 1.0}
    # quarantine keeps the raw record without the bytes
    q = lh.read("quarantine").where(F.col("run_id") == r.run_id).collect()
    assert [x["reason"] for x in q] == ["duplicate_key"]
    raw = json.loads(q[0]["raw_record"])
    assert raw["sample_key"] == q[0]["sample_key"] and "image_bytes" not in raw and raw["image_id"]
    # the run is recorded with its counts, and the commit names it
    run = RunLog(lh).get(r.run_id)
    assert run["status"] == "succeeded" and run["output_version"] == r.output_version
    assert (run["rows_in"], run["rows_kept"], run["rows_rejected"], run["rows_quarantined"]) == (90, 88, 1, 1)
    assert run["metrics"]["rejected.question_missing"] == 1.0
    meta = lh.history("collected").where(F.col("version") == r.output_version).collect()[0]["userMetadata"]
    assert json.loads(meta)["run_id"] == r.run_id


@pytest.mark.slow  # over a minute of its own: `make test-slow` (CI runs it)
def test_rerun_time_travel_and_images_stored_once(spark, make_cfg, synthetic_dump):
    cfg, first = _collect(spark, make_cfg, synthetic_dump, "collection.max_samples=4")
    lh = Lakehouse(spark, cfg)
    n_images = lh.read("images").count()
    assert first.metrics["images_stored"] == n_images > 0
    cfg2, second = _collect(spark, make_cfg, synthetic_dump)
    assert lh.read("images").count() > n_images
    assert second.metrics["images_stored"] == lh.read("images").count() - n_images  # the new ones only
    n_images = lh.read("images").count()
    third = run_stage(spark, cfg2, "collect", full=True)  # recomputed (a plain rerun skips: test_incremental)
    assert lh.read("images").count() == n_images  # same dump again: nothing new stored
    assert third.metrics["images_stored"] == 0
    assert (first.output_version, second.output_version, third.output_version) == (0, 1, 2)
    assert lh.read("collected", 0).count() == 12  # 4 per subset
    assert lh.read("collected", 1).count() == 89
    n = spark.sql(f"SELECT count(*) AS n FROM {lh.name('collected')} VERSION AS OF 0").collect()[0]["n"]
    assert n == 12
    runs = RunLog(lh).list("collect").collect()
    assert [x["output_version"] for x in runs] == [0, 1, 2]
    # --from-run replays the earlier run's dump choice
    again = run_stage(spark, cfg2, "collect", from_run=first.run_id)
    assert lh.read("collected", again.output_version).count() == 12
    assert RunLog(lh).get(again.run_id)["from_run"] == first.run_id


@pytest.mark.slow  # moved out of `make test` to keep it under 15 minutes on CI; `make test-slow` runs it
def test_cap_takes_first_rows_in_dump_order_and_subset_choice(spark, make_cfg, synthetic_dump):
    cfg, r = _collect(spark, make_cfg, synthetic_dump, "collection.subsets=[synth-charts]", "collection.max_samples=5")
    ids = [x["id"] for x in Lakehouse(spark, cfg).read("collected").orderBy("source_row").collect()]
    expected = pq.read_table(synthetic_dump / "synth-charts" / "train-00000-of-00001.parquet").column("id").to_pylist()[:5]
    assert ids == expected
    assert r.metrics["rows_taken.synth-charts"] == 5.0


def _write(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@pytest.mark.parametrize(
    "case,expect",
    [
        ("missing", r"no_answer/train\.parquet: missing required column\(s\) answer"),
        pytest.param("wrongtype", r"badid/train\.parquet: column 'id' has type string, expected int", marks=pytest.mark.slow),
        pytest.param("empty", r"no parquet files under", marks=pytest.mark.slow),
        pytest.param("subset", r"subset\(s\) nope not found .*available: ok", marks=pytest.mark.slow),
        ("corrupt", r"broken/train\.parquet: not a readable parquet file"),
    ],
)
def test_bad_dumps_fail_before_any_stage_write(spark, make_cfg, tmp_path, case, expect):
    good = pa.table({"id": [1], "question": ["q"], "answer": ["a"]})
    root = tmp_path / "dump"
    root.mkdir()
    overrides = []
    if case == "missing":
        _write(root / "no_answer" / "train.parquet", pa.table({"id": [1], "question": ["q"]}))
    elif case == "wrongtype":
        _write(root / "badid" / "train.parquet", pa.table({"id": ["x"], "question": ["q"], "answer": ["a"]}))
    elif case == "subset":
        _write(root / "ok" / "train.parquet", good)
        overrides = ["collection.subsets=[nope]"]
    elif case == "corrupt":
        _write(root / "ok" / "train.parquet", good)
        (root / "broken").mkdir()
        (root / "broken" / "train.parquet").write_bytes(b"PAR1 definitely not parquet")
    cfg = make_cfg(f"collection.source={root}", *overrides)
    with pytest.raises(DumpError, match=expect):
        run_stage(spark, cfg, "collect")
    lh = Lakehouse(spark, cfg)
    assert not lh.exists("collected")
    assert lh.read("images").count() == 0 and lh.read("quarantine").count() == 0
    failed = RunLog(lh).list("collect").collect()
    assert [x["status"] for x in failed] == ["failed"] and "DumpError" in failed[0]["error"]


def test_a_missing_dump_fails_before_any_table_or_run(spark, make_cfg, tmp_path):
    cfg = make_cfg(f"collection.source={tmp_path / 'does-not-exist'}")
    with pytest.raises(StorageError, match=f"^collection.source: {tmp_path}/does-not-exist does not exist$"):
        run_stage(spark, cfg, "collect")
    lh = Lakehouse(spark, cfg)
    assert not any(lh.exists(t) for t in ("runs", "images", "quarantine", "collected"))


@pytest.mark.slow  # moved out of `make test` to keep it under 15 minutes on CI; `make test-slow` runs it
def test_minimal_dump_with_extra_columns_and_missing_ids(spark, make_cfg, tmp_path):
    root = tmp_path / "dump"
    _write(root / "s" / "a.parquet", pa.table({
        "id": pa.array([1, None, 2], pa.int32()), "question": ["q1", "q2", None], "answer": ["a", "b", "c"],
        "extra": [1, 2, 3], "qwen3vl_4b_pass_rate": pa.array([0.5, None, 1.0], pa.float32()),
    }))
    cfg, r = _collect(spark, make_cfg, root)
    assert (r.rows_in, r.rows_kept, r.rows_rejected, r.rows_quarantined) == (3, 1, 1, 1)
    rows = {x["sample_key"]: x for x in Lakehouse(spark, cfg).read("collected").collect()}
    assert rows["s:1"]["source_pass_rate"] == 0.5 and rows["s:1"]["image_id"] is None
    assert rows["s:2"]["reject_reason"] == "question_missing"
    q = Lakehouse(spark, cfg).read("quarantine").collect()
    assert [(x["reason"], x["sample_key"]) for x in q] == [("missing_id", None)]
    assert r.metrics["ignored_columns"] == 1.0


def test_object_store_listing_goes_through_hadoop_fs(spark, synthetic_dump):
    """Object-store URIs are listed by Hadoop's FileSystem and their schemas read by Spark; file:// stands in."""
    from mfr.dump.listing import _spark_schema, list_local, list_remote

    remote = list_remote(spark, f"file://{synthetic_dump}")
    local = list_local(synthetic_dump)
    assert [rel for rel, _ in remote] == [rel for rel, _ in local]
    cols = _spark_schema(spark, remote[0][1])
    assert cols["id"] == "int" and cols["image"] == "image" and cols["question"] == "string"
    with pytest.raises(DumpError, match="does not exist"):
        list_remote(spark, f"file://{synthetic_dump}/nope")
