"""Golden funnel: every row's stage and reject reason, end to end, must not change through refactors.

The pipeline (collect → clean → distill → select → export, default config, no endpoints) runs on the
synthetic dump and on the real sample; each row of every stage table (and of the quarantine) becomes one
line ``stage <tab> sample_key <tab> reason``. The synthetic funnel is stored whole in
``tests/golden/funnel_synthetic.json``; for the real sample only counts per (stage, reason) and a digest of
the lines are stored (its rows stay in ../shared). ``MFR_GOLDEN_WRITE=1`` rewrites the files: do that only
for a change whose new funnel you have checked row by row and explain in the commit.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage

GOLDEN = Path(__file__).parent / "golden"
STAGES = ("collect", "clean", "distill", "select", "export")


def _funnel(spark, cfg, tmp_path: Path, after_collect=None) -> list[str]:
    lh = Lakehouse(spark, cfg)
    lines = []
    for stage in STAGES:
        if stage == "clean" and after_collect is not None:
            after_collect(lh)
        extra = [f"export.out={tmp_path / 'export'}"] if stage == "export" else []
        result = run_stage(spark, cfg.with_overrides(extra), stage)
        table = result.output_table.split(".")[-1]
        rows = lh.read(table, result.output_version).select("sample_key", "reject_reason").collect()
        lines += [f"{stage}\t{r['sample_key']}\t{r['reject_reason'] or 'kept'}" for r in rows]
        quarantined = lh.read("quarantine").where(F.col("run_id") == result.run_id).select("sample_key", "reason").collect()
        lines += [f"{stage}:quarantine\t{r['sample_key']}\t{r['reason']}" for r in quarantined]
    return sorted(lines)


def _counts(lines: list[str]) -> dict[str, int]:
    counter = collections.Counter("\t".join((ln.split("\t")[0], ln.split("\t")[2])) for ln in lines)
    return dict(sorted(counter.items()))


def _check(name: str, actual: dict) -> None:
    path = GOLDEN / name
    if os.environ.get("MFR_GOLDEN_WRITE") == "1":
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        pytest.skip(f"rewrote {path}")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual == expected


def _check_collected_real_rows(real_sample: Path):
    """What collect keeps of real rows: sources, MMR1 without images, a Chinese BMMR row's fields and image."""
    import pyarrow.parquet as pq

    def check(lh: Lakehouse) -> None:
        df = lh.read("collected")
        assert df.select("source").distinct().count() == 11
        mmr1 = df.where(F.col("source") == "MMR1").collect()
        assert len(mmr1) == 10 and all(x["image_id"] is None for x in mmr1)
        bmmr = df.where(F.col("sample_key") == "BMMR:72393").collect()[0]
        assert bmmr["answer"] == "C" and bmmr["original_question"].startswith("<image>如图所示")
        assert bmmr["source_pass_rate"] == 1.0 and bmmr["source_is_consistent"] is True
        assert bmmr["cot_response"].startswith("<think>")
        src = pq.read_table(real_sample / "BMMR" / "train-00000-of-00001.parquet").to_pylist()[0]
        assert bmmr["image_id"] == hashlib.sha256(src["image"]["bytes"]).hexdigest()
        img = lh.read("images").where(F.col("image_id") == bmmr["image_id"]).collect()[0]
        assert bytes(img["bytes"]) == src["image"]["bytes"] and img["format"] == "JPEG"

    return check


@pytest.mark.slow
def test_golden_funnel_real_sample(spark, make_cfg, real_sample, tmp_path) -> None:
    lines = _funnel(spark, make_cfg(f"collection.source={real_sample}"), tmp_path, _check_collected_real_rows(real_sample))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    _check("funnel_real_sample.json", {"counts": _counts(lines), "sha256": digest})


# Table features Databricks turns on for new tables (deletion vectors by workspace default) or users do
# (column mapping to rename columns, row tracking): readers and writers of protocol 3/7.
DATABRICKS_TABLE_DEFAULTS = {
    "spark.databricks.delta.properties.defaults.enableDeletionVectors": "true",
    "spark.databricks.delta.properties.defaults.columnMapping.mode": "name",
    "spark.databricks.delta.properties.defaults.enableRowTracking": "true",
}


# The default leg makes its tables as Databricks does (deletion vectors, column mapping, row tracking; plain
# tables are what every other test and the demo write); each compat leg (`make compat-leg` sets MFR_LEG) runs the
# funnel on plain tables: the features cost 10-20 s more a leg there, measured.
ON_A_COMPAT_LEG = bool(os.environ.get("MFR_LEG"))


@pytest.mark.compat  # every row's stage and reason, the same on every leg
@pytest.mark.slow
def test_golden_funnel_synthetic(spark, make_cfg, synthetic_dump, tmp_path) -> None:
    features = {} if ON_A_COMPAT_LEG else DATABRICKS_TABLE_DEFAULTS
    for key, value in features.items():
        spark.conf.set(key, value)
    try:
        cfg = make_cfg(f"collection.source={synthetic_dump}")
        lines = _funnel(spark, cfg, tmp_path)
        props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {cfg.settings.lakehouse.schema}.runs").collect()}
    finally:
        for key in features:
            spark.conf.unset(key)
    if features:
        assert props["delta.enableDeletionVectors"] == "true" and props["delta.columnMapping.mode"] == "name"
        assert props["delta.enableRowTracking"] == "true"
    assert len({ln.split("\t")[0] for ln in lines} & set(STAGES)) == len(STAGES)
    _check("funnel_synthetic.json", {"counts": _counts(lines), "lines": lines})
