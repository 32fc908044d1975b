"""The only module that reads and writes tables: stage tables, images, runs, quarantine.

Every stage run writes its output as one new Delta version whose commit ``userMetadata`` names the run,
and records itself in ``<schema>.runs`` with the versions it read and wrote. Time travel to a run is
``SELECT … FROM <schema>.<stage> VERSION AS OF <output_version>``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import Config

STAGE_TABLES = {
    "collect": "collected",
    "clean": "cleaned",
    "distill": "distilled",
    "select": "selected",
    "export": "exported",
}

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("stage", T.StringType(), False),
        T.StructField("status", T.StringType(), False),
        T.StructField("started_at", T.TimestampType(), True),
        T.StructField("finished_at", T.TimestampType(), True),
        T.StructField("config_hash", T.StringType(), True),
        T.StructField("config_json", T.StringType(), True),
        T.StructField("code_version", T.StringType(), True),
        T.StructField("from_run", T.StringType(), True),
        T.StructField("input_versions", T.MapType(T.StringType(), T.LongType()), True),
        T.StructField("output_table", T.StringType(), True),
        T.StructField("output_version", T.LongType(), True),
        T.StructField("rows_in", T.LongType(), True),
        T.StructField("rows_kept", T.LongType(), True),
        T.StructField("rows_rejected", T.LongType(), True),
        T.StructField("rows_quarantined", T.LongType(), True),
        T.StructField("metrics", T.MapType(T.StringType(), T.DoubleType()), True),
        T.StructField("error", T.StringType(), True),
    ]
)

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("stage", T.StringType(), False),
        T.StructField("run_id", T.StringType(), False),
        T.StructField("sample_key", T.StringType(), True),
        T.StructField("source", T.StringType(), True),
        T.StructField("reason", T.StringType(), False),
        T.StructField("raw_record", T.StringType(), True),
        T.StructField("source_file", T.StringType(), True),
        T.StructField("recorded_at", T.TimestampType(), True),
    ]
)

IMAGES_SCHEMA = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("bytes", T.BinaryType(), True),
        T.StructField("width", T.IntegerType(), True),
        T.StructField("height", T.IntegerType(), True),
        T.StructField("format", T.StringType(), True),
        T.StructField("num_bytes", T.LongType(), True),
        T.StructField("origin", T.StringType(), True),
        T.StructField("run_id", T.StringType(), True),
    ]
)

LLM_CALLS_SCHEMA = T.StructType(
    [
        T.StructField("request_key", T.StringType(), False),
        T.StructField("sample_key", T.StringType(), True),
        T.StructField("purpose", T.StringType(), True),
        T.StructField("model", T.StringType(), True),
        T.StructField("prompt_version", T.StringType(), True),
        T.StructField("sample_index", T.IntegerType(), True),
        T.StructField("status", T.StringType(), False),
        T.StructField("attempts", T.IntegerType(), True),
        T.StructField("finish_reason", T.StringType(), True),
        T.StructField(
            "choices",
            T.ArrayType(T.StructType([T.StructField("text", T.StringType()), T.StructField("finish_reason", T.StringType())])),
            True,
        ),
        T.StructField("prompt_tokens", T.LongType(), True),
        T.StructField("completion_tokens", T.LongType(), True),
        T.StructField("latency_s", T.DoubleType(), True),
        T.StructField("endpoint", T.StringType(), True),
        T.StructField("error_kind", T.StringType(), True),
        T.StructField("error", T.StringType(), True),
        T.StructField("run_id", T.StringType(), True),
        T.StructField("created_at", T.TimestampType(), True),
    ]
)

_USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def code_version() -> str:
    """Git commit of the code when run from a checkout, else the package version."""
    from mfr import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=5, check=True,
        )
        return f"{__version__}+{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


@dataclass
class Run:
    """One stage run in progress."""

    run_id: str
    stage: str
    config: Config
    input_versions: dict[str, int] = field(default_factory=dict)
    from_run: str | None = None
    started_at: dt.datetime = field(default_factory=_now)

    @property
    def commit_metadata(self) -> str:
        return json.dumps(
            {"run_id": self.run_id, "stage": self.stage, "config_hash": self.config.hash},
            sort_keys=True,
        )


def _shape(schema: T.StructType) -> list[tuple[str, str]]:
    """Column names and types, nullability aside (Delta keeps the table's)."""
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def new_run_id(stage: str) -> str:
    return f"{_now():%Y%m%dT%H%M%S}-{stage}-{secrets.token_hex(3)}"


class Lakehouse:
    """Table I/O for one ``catalog.schema``."""

    def __init__(self, spark: SparkSession, cfg: Config):
        self.spark = spark
        self.cfg = cfg
        catalog = cfg.get("lakehouse.catalog")
        schema = cfg.get("lakehouse.schema")
        self.namespace = f"{catalog}.{schema}" if catalog else schema
        self._ready = False

    # ---- names and versions -------------------------------------------------------------------
    def name(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    def ensure_schema(self) -> None:
        if self._ready:
            return
        self.spark.sql(f"CREATE SCHEMA IF NOT EXISTS {self.namespace}")
        self._ensure_table("runs", RUNS_SCHEMA)
        self._ensure_table("quarantine", QUARANTINE_SCHEMA)
        self._ensure_table("images", IMAGES_SCHEMA)
        self._ensure_table("llm_calls", LLM_CALLS_SCHEMA)
        self._ready = True

    def _ensure_table(self, table: str, schema: T.StructType) -> None:
        if not self.exists(table):
            (
                self.spark.createDataFrame([], schema)
                .write.format("delta")
                .mode("ignore")
                .saveAsTable(self.name(table))
            )

    def exists(self, table: str) -> bool:
        return bool(self.spark.catalog.tableExists(self.name(table)))

    def current_version(self, table: str) -> int | None:
        if not self.exists(table):
            return None
        row = self.spark.sql(f"DESCRIBE HISTORY {self.name(table)} LIMIT 1").collect()
        return int(row[0]["version"]) if row else None

    def read(self, table: str, version: int | None = None) -> DataFrame:
        """A table, pinned to ``version`` when given (time travel)."""
        if version is None:
            return self.spark.table(self.name(table))
        return self.spark.sql(f"SELECT * FROM {self.name(table)} VERSION AS OF {int(version)}")

    def history(self, table: str) -> DataFrame:
        return self.spark.sql(f"DESCRIBE HISTORY {self.name(table)}")

    # ---- writes ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _commit_metadata(self, run: Run) -> Iterator[None]:
        conf = self.spark.conf
        previous = conf.get(_USER_METADATA_CONF, None)
        conf.set(_USER_METADATA_CONF, run.commit_metadata)
        try:
            yield
        finally:
            if previous is None:
                conf.unset(_USER_METADATA_CONF)
            else:
                conf.set(_USER_METADATA_CONF, previous)

    def _version_written_by(self, table: str, run: Run) -> int:
        rows = self.spark.sql(f"DESCRIBE HISTORY {self.name(table)} LIMIT 20").collect()
        for row in rows:
            meta = row["userMetadata"]
            if meta and json.loads(meta).get("run_id") == run.run_id:
                return int(row["version"])
        raise RuntimeError(f"no commit of {self.name(table)} carries run {run.run_id}")

    def write_stage_output(self, df: DataFrame, table: str, run: Run) -> int:
        """Replace ``table`` with ``df`` as one new Delta version; returns that version."""
        self.ensure_schema()
        writer = df.write.format("delta").mode("overwrite")
        if not self.exists(table) or _shape(self.spark.table(self.name(table)).schema) != _shape(df.schema):
            writer = writer.option("overwriteSchema", "true")  # only when columns really change
        with self._commit_metadata(run):
            writer.saveAsTable(self.name(table))
        return self._version_written_by(table, run)

    def append(self, df: DataFrame, table: str, run: Run) -> None:
        self.ensure_schema()
        with self._commit_metadata(run):
            df.write.format("delta").mode("append").saveAsTable(self.name(table))

    def append_once(self, df: DataFrame, table: str, run: Run, app_id: str, version: int) -> None:
        """Append as an idempotent Delta commit: a second write with the same (app_id, version) is skipped,
        so a retried driver step never stores the same results twice."""
        self.ensure_schema()
        with self._commit_metadata(run):
            (
                df.write.format("delta")
                .mode("append")
                .option("txnAppId", app_id)
                .option("txnVersion", int(version))
                .saveAsTable(self.name(table))
            )

    def quarantine(self, df: DataFrame, run: Run) -> None:
        """Append records that cannot be rows of the stage (columns as QUARANTINE_SCHEMA, less run data)."""
        out = df.select(
            F.lit(run.stage).alias("stage"),
            F.lit(run.run_id).alias("run_id"),
            *[F.col(c).cast(QUARANTINE_SCHEMA[c].dataType) for c in ("sample_key", "source", "reason", "raw_record", "source_file")],
            F.current_timestamp().alias("recorded_at"),
        )
        self.append(out, "quarantine", run)

    def quarantined_count(self, run: Run) -> int:
        return self.read("quarantine").where(F.col("run_id") == run.run_id).count()

    def add_images(self, images: DataFrame, run: Run, origin: str) -> int:
        """Insert images whose ``image_id`` is not stored yet (content-addressed: each stored once).

        ``images`` has image_id, bytes, width, height, format and unique image_id. Returns the table
        version after the insert.
        """
        from delta.tables import DeltaTable

        self.ensure_schema()
        source = images.select(
            "image_id", "bytes", "width", "height", "format",
            F.length("bytes").cast("long").alias("num_bytes"),
            F.lit(origin).alias("origin"),
            F.lit(run.run_id).alias("run_id"),
        )
        target = DeltaTable.forName(self.spark, self.name("images"))
        with self._commit_metadata(run):
            (
                target.alias("t")
                .merge(source.alias("s"), "t.image_id = s.image_id")
                .whenNotMatchedInsertAll()
                .execute()
            )
        return int(self.current_version("images") or 0)

    # ---- runs ----------------------------------------------------------------------------------
    def start_run(self, stage: str, cfg: Config, input_versions: dict[str, int], from_run: str | None) -> Run:
        self.ensure_schema()
        run = Run(new_run_id(stage), stage, cfg, dict(input_versions), from_run)
        row = {
            "run_id": run.run_id,
            "stage": stage,
            "status": "running",
            "started_at": run.started_at,
            "config_hash": cfg.hash,
            "config_json": json.dumps(cfg.redacted(), sort_keys=True),
            "code_version": code_version(),
            "from_run": from_run,
            "input_versions": {k: int(v) for k, v in input_versions.items()},
            "output_table": self.name(STAGE_TABLES[stage]) if stage in STAGE_TABLES else None,
        }
        df = self.spark.createDataFrame([tuple(row.get(f.name) for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA)
        self.append(df, "runs", run)
        return run

    def _update_run(self, run: Run, values: dict[str, Any]) -> None:
        from delta.tables import DeltaTable

        table = DeltaTable.forName(self.spark, self.name("runs"))
        with self._commit_metadata(run):
            table.update(F.col("run_id") == F.lit(run.run_id), values)

    def finish_run(
        self,
        run: Run,
        *,
        output_version: int | None,
        rows_in: int,
        rows_kept: int,
        rows_rejected: int,
        rows_quarantined: int,
        metrics: dict[str, float],
    ) -> None:
        metric_map = F.create_map(
            *[x for k, v in sorted(metrics.items()) for x in (F.lit(k), F.lit(float(v)).cast("double"))]
        ) if metrics else F.lit(None).cast(RUNS_SCHEMA["metrics"].dataType)
        self._update_run(
            run,
            {
                "status": F.lit("succeeded"),
                "finished_at": F.lit(_now()).cast("timestamp"),
                "output_version": F.lit(output_version).cast("long"),
                "rows_in": F.lit(int(rows_in)).cast("long"),
                "rows_kept": F.lit(int(rows_kept)).cast("long"),
                "rows_rejected": F.lit(int(rows_rejected)).cast("long"),
                "rows_quarantined": F.lit(int(rows_quarantined)).cast("long"),
                "metrics": metric_map,
            },
        )

    def fail_run(self, run: Run, error: str) -> None:
        self._update_run(
            run,
            {
                "status": F.lit("failed"),
                "finished_at": F.lit(_now()).cast("timestamp"),
                "error": F.lit(error[:4000]),
            },
        )

    def runs(self, stage: str | None = None) -> DataFrame:
        self.ensure_schema()
        df = self.read("runs")
        if stage:
            df = df.where(F.col("stage") == stage)
        return df.orderBy("started_at")

    def get_run(self, run_id: str) -> dict[str, Any]:
        self.ensure_schema()
        rows = self.read("runs").where(F.col("run_id") == run_id).collect()
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.name('runs')}")
        return rows[0].asDict(recursive=True)

    def last_successful_run(self, stage: str) -> dict[str, Any] | None:
        rows = (
            self.runs(stage).where(F.col("status") == "succeeded").orderBy(F.col("started_at").desc()).limit(1).collect()
        )
        return rows[0].asDict(recursive=True) if rows else None
