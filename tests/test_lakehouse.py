"""Table I/O details that readers and writers rely on (statistics columns of new tables)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from pyspark.sql import types as T

from mfr.lakehouse import Lakehouse, Run, stats_columns


def _file_stats(spark, lh: Lakehouse, table: str) -> list[dict]:
    """The per-file statistics of the table's newest commit, read from its Delta log."""
    location = spark.sql(f"DESCRIBE DETAIL {lh.name(table)}").collect()[0]["location"].replace("file:", "")
    newest = sorted(Path(location, "_delta_log").glob("*.json"))[-1]
    adds = [json.loads(line).get("add") for line in newest.read_text().splitlines()]
    return [json.loads(a["stats"]) for a in adds if a and a.get("stats")]


def test_stats_columns_are_keys_and_codes_of_an_indexable_type():
    schema = T.StructType([
        T.StructField("question", T.StringType()), T.StructField("sample_key", T.StringType()),
        T.StructField("id", T.LongType()), T.StructField("reject_reason", T.StringType()),
        T.StructField("status", T.BooleanType()),  # Delta keeps no min/max of booleans
        T.StructField("cot_response", T.StringType()),
    ])
    assert stats_columns(schema) == ["sample_key", "id", "reject_reason"]


@pytest.mark.compat  # table properties and file statistics
def test_a_new_stage_table_gathers_statistics_of_its_keys_only(spark, make_cfg):
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    run = Run("r1", "collect", cfg)
    df = spark.createDataFrame(
        [("s:1", "s", 1, "a long question " * 20, None, "r1"), ("s:2", "s", 2, "another " * 30, "code", "r1")],
        "sample_key string, source string, id long, question string, reject_reason string, run_id string",
    )
    lh.write_stage_output(df.coalesce(1), "collected", run)
    stats = _file_stats(spark, lh, "collected")
    assert stats and all(s["numRecords"] >= 1 for s in stats)
    assert set(stats[0]["minValues"]) == {"sample_key", "source", "id", "reject_reason", "run_id"}
    assert "question" not in stats[0]["nullCount"]
    # a later version that drops a statistics column still writes (the list narrows to the columns kept)
    lh.write_stage_output(df.drop("source").coalesce(1), "collected", Run("r2", "collect", cfg))
    assert lh.read("collected").columns == ["sample_key", "id", "question", "reject_reason", "run_id"]
    props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {lh.name('collected')}").collect()}
    assert props["delta.dataSkippingStatsColumns"] == "sample_key,id,reject_reason,run_id"
    # the system tables are created the same way
    runs = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {lh.name('runs')}").collect()}
    assert runs["delta.dataSkippingStatsColumns"] == "run_id,stage,status"
    # created by DDL: every column and type as declared, nullable as a table written from a DataFrame is
    calls = spark.table(lh.name("llm_calls")).schema
    assert all(f.nullable for f in calls) and calls["latency_s"].dataType == T.DoubleType()
    assert calls["choices"].dataType.simpleString() == "array<struct<text:string,finish_reason:string>>"
    assert spark.table(lh.name("runs")).schema["input_versions"].dataType == T.MapType(T.StringType(), T.LongType())
    assert [f.name for f in spark.table(lh.name("quarantine")).schema] == [
        "stage", "run_id", "sample_key", "source", "reason", "raw_record", "source_file", "recorded_at"]


@pytest.mark.compat  # retention properties
@pytest.mark.slow  # ~15 s of table writes (every compat leg runs it)
def test_new_tables_keep_replaced_versions_for_the_configured_days(spark, make_cfg):
    """VACUUM (a user's, or Databricks' predictive optimization) reads these properties: an earlier run's
    version stays readable for time travel and --from-run that long."""
    df = spark.createDataFrame([("s:1", 1)], "sample_key string, id long")

    def props(cfg, table: str) -> dict[str, str]:
        lh = Lakehouse(spark, cfg)
        if table != "runs":
            lh.write_stage_output(df, table, Run("r1", "collect", cfg))
        lh.ensure_schema()
        return {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {lh.name(table)}").collect()}

    for table in ("collected", "runs"):
        kept = props(make_cfg("lakehouse.keep_versions_days=90", f"lakehouse.schema=keep90_{uuid.uuid4().hex[:8]}"), table)
        assert kept["delta.deletedFileRetentionDuration"] == "interval 2160 hours"
        assert kept["delta.logRetentionDuration"] == "interval 2160 hours"
    default = props(make_cfg(f"lakehouse.schema=keep_{uuid.uuid4().hex[:8]}"), "collected")
    assert default["delta.deletedFileRetentionDuration"] == "interval 720 hours"  # 30 days, not Delta's 7
    deltas_own = props(make_cfg("lakehouse.keep_versions_days=null", f"lakehouse.schema=own_{uuid.uuid4().hex[:8]}"), "collected")
    assert "delta.deletedFileRetentionDuration" not in deltas_own and "delta.logRetentionDuration" not in deltas_own


def test_a_setting_is_made_for_the_block_and_put_back(spark):
    from mfr.session import session_setting

    key = "spark.databricks.delta.commitInfo.userMetadata"
    spark.conf.unset(key)
    with session_setting(spark, key, '{"run_id": "r1"}') as made:
        assert made and spark.conf.get(key) == '{"run_id": "r1"}'
    assert spark.conf.get(key, None) is None  # unset again: it was unset before
    spark.conf.set(key, "theirs")
    try:
        with session_setting(spark, key, "ours"):
            assert spark.conf.get(key) == "ours"
        assert spark.conf.get(key) == "theirs"  # a value someone else set is theirs again
    finally:
        spark.conf.unset(key)


@pytest.mark.compat  # which settings a session refuses
def test_a_setting_the_session_refuses_is_gone_without_and_said_once(spark, caplog):
    """A static setting is one the session really refuses (Spark's AnalysisException, as Databricks
    serverless refuses most settings): the block runs without it, and one warning names the key."""
    from mfr.session import session_setting

    key = "spark.sql.warehouse.dir"  # static: set when the session was built
    before = spark.conf.get(key)
    for _ in range(2):
        with session_setting(spark, key, "/elsewhere") as made:
            assert made is False and spark.conf.get(key) == before
    warned = [r.getMessage() for r in caplog.records if key in r.getMessage()]
    assert len(warned) == 1 and "does not let spark.sql.warehouse.dir be set" in warned[0]


def test_a_schema_location_is_said_the_way_its_catalog_takes_it():
    from mfr.lakehouse import schema_ddl

    assert schema_ddl("mfr", None, False) == "CREATE SCHEMA IF NOT EXISTS mfr"
    assert schema_ddl("mfr", "s3://b/mfr", False) == "CREATE SCHEMA IF NOT EXISTS mfr LOCATION 's3://b/mfr'"  # Glue, HMS
    # Unity Catalog refuses LOCATION for a schema: its storage is a MANAGED LOCATION
    assert schema_ddl("main.mfr", "s3://b/mfr", True) == "CREATE SCHEMA IF NOT EXISTS main.mfr MANAGED LOCATION 's3://b/mfr'"
    assert schema_ddl("mfr", "s3://b/it's", False).endswith("LOCATION 's3://b/its'")


def test_in_unity_catalog_no_file_goes_under_the_schema_location(spark, make_cfg, monkeypatch, tmp_path):
    """On Databricks (stood in for: the session is said to be one) a schema in a Unity Catalog catalog keeps
    its staging out of the managed location, and table creation looks for no half-made table there; the
    legacy hive_metastore catalog is a Hive metastore as before."""
    import mfr.lakehouse as lakehouse

    monkeypatch.setattr(lakehouse, "databricks_session", lambda spark: True)
    location = str(tmp_path / "managed")
    uc = Lakehouse(spark, make_cfg("lakehouse.catalog=main", f"lakehouse.location={location}"))
    assert uc.unity_catalog
    assert not uc.staging_root.startswith(location) and uc.staging_root.endswith("_llm")

    def touched(*args, **kwargs):
        raise AssertionError("Unity Catalog's managed storage was listed")

    monkeypatch.setattr(type(uc.storage), "list_files", touched)
    monkeypatch.setattr(uc, "schema_location", touched)
    assert uc.heal("collected") is False
    hms = Lakehouse(spark, make_cfg("lakehouse.catalog=hive_metastore", f"lakehouse.location={location}"))
    assert not hms.unity_catalog and hms.staging_root == f"{location}/_mfr"
    monkeypatch.setattr(lakehouse, "databricks_session", lambda spark: False)
    assert not Lakehouse(spark, make_cfg("lakehouse.catalog=main")).unity_catalog  # elsewhere a catalog is a catalog


@pytest.mark.slow  # a race of its own for ~20 s (every compat leg runs it)
@pytest.mark.compat  # the conflicts OPTIMIZE raises
def test_a_stage_output_is_written_even_while_its_table_is_compacted(spark, make_cfg):
    """Replacing a stage table while something compacts it (Databricks' predictive optimization runs
    OPTIMIZE by itself) makes Delta refuse the commit that comes second; the output is written again."""
    import threading
    import time

    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    rows = spark.range(200).selectExpr("CAST(id AS STRING) AS sample_key", "CAST(NULL AS STRING) AS reject_reason")
    lh.write_stage_output(rows.repartition(4), "collected", Run("r0", "collect", cfg))
    compactions = []

    def churn() -> None:  # until two compactions committed between the writes (each may lose to a write)
        for i in range(16):
            if len(compactions) >= 2:
                return
            try:
                spark.sql(f"INSERT INTO {lh.name('collected')} VALUES ('extra-{i}', NULL)")
                compactions.append(spark.sql(f"OPTIMIZE {lh.name('collected')}").collect())
            except Exception:  # lost to a write: try again
                pass
            time.sleep(0.3)  # pacing, so the writer's commits fall between the churner's

    churner = threading.Thread(target=churn)
    churner.start()
    written = []
    while churner.is_alive() or len(written) < 4:
        run = Run(f"r{len(written) + 1}", "collect", cfg)
        written.append((run.run_id, lh.write_stage_output(rows.repartition(4), "collected", run)))
    churner.join()
    assert len(compactions) >= 2
    last_run, last_version = written[-1]
    assert lh.read("collected", last_version).count() == 200  # each version is one whole output
    meta = lh.history("collected").where(f"version = {last_version}").collect()[0]["userMetadata"]
    assert json.loads(meta)["run_id"] == last_run


def test_a_table_is_created_by_one_ddl_statement_with_its_properties_quoted():
    from mfr.lakehouse import create_table_ddl

    schema = T.StructType([T.StructField("run_id", T.StringType(), False),
                           T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()))])
    ddl = create_table_ddl("s.runs", schema, {"delta.x": "it's", "delta.y": "a\\b"})
    assert ddl == ("CREATE TABLE IF NOT EXISTS s.runs (`run_id` string, `metrics` map<string,double>) USING delta"
                   " TBLPROPERTIES ('delta.x' = 'it\\'s', 'delta.y' = 'a\\\\b')")
