"""The only module that reads and writes tables: stage tables, images, quarantine, views, RESTORE.

Every stage run writes its output as one new Delta version whose commit ``userMetadata`` names the run,
and records itself in ``<schema>.runs`` with the versions it read and wrote. Time travel to a run is
``SELECT … FROM <schema>.<stage> VERSION AS OF <output_version>``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import json
import random
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pyspark.sql import DataFrame, DataFrameWriter, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import Config
from mfr.session import databricks_session, session_setting
from mfr.storage import Storage, join, spark_path

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
        # the case that applied: full, incremental or skip, with why (mfr.incremental); added in 0.x
        T.StructField("mode", T.StringType(), True),
    ]
)
# columns added to a system table after it was first made: a table made before gets them (ensure_schema)
ADDED_COLUMNS = {"runs": ("mode",)}

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
# Columns whose min/max statistics let a reader skip files: keys and codes. Delta's default (the first 32
# columns) would gather them over every question, trace and caption at every write, for prefixes that never
# skip a file; measured ~1.5 s per 100k collected rows. Tables are created with this list (intersected with
# their columns); Delta keeps statistics only for supported types (strings, numbers, dates, timestamps).
STATS_COLUMNS = ("sample_key", "source", "subset", "id", "reject_reason", "run_id", "stage", "status", "purpose")
_STATS_PROPERTY = "delta.dataSkippingStatsColumns"


def stats_columns(schema: T.StructType) -> list[str]:
    """The statistics columns of a table with ``schema`` (``STATS_COLUMNS`` it has, of a type Delta indexes)."""
    indexable = (T.StringType, T.NumericType, T.DateType, T.TimestampType)
    types = {f.name: f.dataType for f in schema.fields}
    return [c for c in STATS_COLUMNS if isinstance(types.get(c), indexable)]


# Perceptual hashes of stored images (clean computes them in its image pass; content-addressed like images,
# beside them rather than in them: adding columns to mfr.images would rewrite every stored image's bytes)
FINGERPRINTS_SCHEMA = T.StructType(
    [
        T.StructField("image_id", T.StringType(), False),
        T.StructField("phash", T.LongType(), True),
        T.StructField("dhash", T.LongType(), True),
        T.StructField("run_id", T.StringType(), True),
    ]
)

SYSTEM_SCHEMAS = {
    "runs": RUNS_SCHEMA, "quarantine": QUARANTINE_SCHEMA, "images": IMAGES_SCHEMA, "llm_calls": LLM_CALLS_SCHEMA,
}

_USER_METADATA_CONF = "spark.databricks.delta.commitInfo.userMetadata"

R = TypeVar("R")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def sql_literal(value: object, dtype: T.DataType) -> str:
    """``value`` as a SQL literal of ``dtype``. Strings go through base64, so no text (quotes, backslashes,
    newlines in an error message) can break out of the literal."""
    kind = dtype.simpleString()
    if value is None:
        return f"CAST(NULL AS {kind})"
    if isinstance(dtype, T.StringType):
        return f"CAST(unbase64('{base64.b64encode(str(value).encode('utf-8')).decode('ascii')}') AS STRING)"
    if isinstance(dtype, T.TimestampType):
        assert isinstance(value, dt.datetime)
        aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)  # naive means UTC here
        return f"timestamp_micros({round(aware.timestamp() * 1_000_000)})"
    if isinstance(dtype, (T.LongType, T.IntegerType, T.ShortType, T.ByteType)):
        return f"CAST({int(value)} AS {kind})"  # type: ignore[call-overload]  # numbers, checked by int()
    if isinstance(dtype, (T.DoubleType, T.FloatType)):
        return f"CAST('{float(value)!r}' AS {kind})"  # type: ignore[arg-type]  # 'nan' and 'inf' cast too
    if isinstance(dtype, T.BooleanType):
        return "TRUE" if value else "FALSE"
    if isinstance(dtype, T.MapType):
        assert isinstance(value, dict)
        pairs = ", ".join(f"{sql_literal(k, dtype.keyType)}, {sql_literal(v, dtype.valueType)}" for k, v in value.items())
        return f"CAST(map({pairs}) AS {kind})"
    raise TypeError(f"no SQL literal for {kind}")


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the code when run from a checkout, else the package version: asked once per process (the
    code a process runs is the code it imported, whatever the checkout holds later)."""
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
    started_at: dt.datetime = field(default_factory=utc_now)

    @property
    def commit_metadata(self) -> str:
        return json.dumps(
            {"run_id": self.run_id, "stage": self.stage, "config_hash": self.config.hash},
            sort_keys=True,
        )


def creation_properties(schema: T.StructType, keep_days: float | None) -> dict[str, str]:
    """The Delta properties mfr creates a table with: its statistics columns (``stats_columns``, or none at
    all), and (``keep_days``) how long a replaced version stays readable: VACUUM (a user's, or Databricks'
    predictive optimization) keeps the files of every run's version, and the log keeps the version, that long."""
    columns = stats_columns(schema)
    props = {_STATS_PROPERTY: ",".join(columns)} if columns else {"delta.dataSkippingNumIndexedCols": "0"}
    if keep_days is not None:
        interval = f"interval {max(1, round(keep_days * 24))} hours"
        props.update({"delta.deletedFileRetentionDuration": interval, "delta.logRetentionDuration": interval})
    return props


def _creating(writer: DataFrameWriter, schema: T.StructType, keep_days: float | None,
              change_feed: bool = False) -> DataFrameWriter:
    """A writer that creates its table with ``creation_properties`` (Delta reads ``delta.*`` writer options as
    the new table's properties); ``change_feed``: with Delta's change data feed and deletion vectors (stage
    tables: an incremental run of the next stage reads only the rows that changed, and a MERGE rewrites no
    file for the rows it removes)."""
    props = creation_properties(schema, keep_days)
    if change_feed:
        props[CHANGE_FEED_PROPERTY] = "true"
        # an incremental run's MERGE marks the few rows it deletes or updates instead of rewriting each file
        # that holds one (measured: 3 rows deleted rewrote a ~25 MB file of a 100k-row table)
        props["delta.enableDeletionVectors"] = "true"
    for key, value in props.items():
        writer = writer.option(key, value)
    return writer


CHANGE_FEED_PROPERTY = "delta.enableChangeDataFeed"


def create_table_ddl(name: str, schema: T.StructType, properties: dict[str, str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` of an empty Delta table: one catalog command, where writing an empty
    DataFrame plans and runs a job first (measured: four system tables 1.0–1.5 s against 2.2–3.2 s, warm)."""
    def column(f: T.StructField) -> str:  # nullable, as Delta makes a table created from a DataFrame
        return f"`{f.name}` {f.dataType.simpleString()}"

    def literal(text: str) -> str:
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"

    props = ", ".join(f"{literal(k)} = {literal(v)}" for k, v in properties.items())
    return (f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(column(f) for f in schema.fields)}) USING delta"
            + (f" TBLPROPERTIES ({props})" if props else ""))


def _shape(schema: T.StructType) -> list[tuple[str, str]]:
    """Column names and types, nullability aside (Delta keeps the table's)."""
    return [(f.name, f.dataType.simpleString()) for f in schema.fields]


def new_run_id(stage: str) -> str:
    return f"{utc_now():%Y%m%dT%H%M%S}-{stage}-{secrets.token_hex(3)}"


def retry_conflicts(write: Callable[[], R], attempts: int = 8) -> R:
    """``write()``, again after a short wait while Delta refuses its commit for a concurrent one (another
    run's append to a shared table, a compaction rewriting the files it read): for writes whose repeat
    is harmless."""
    for attempt in range(attempts):
        try:
            return write()
        except Exception as exc:
            if "Concurrent" not in f"{type(exc).__name__} {exc}" or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) * (0.5 + random.random()))  # jittered: two losers do not meet again
    raise AssertionError("unreachable")


def schema_ddl(namespace: str, location: str | None, unity_catalog: bool) -> str:
    """The statement creating the schema if missing, at ``location`` when given: Unity Catalog takes a
    schema's storage as ``MANAGED LOCATION`` and refuses ``LOCATION`` (a Hive metastore's, Glue's)."""
    if not location:
        return f"CREATE SCHEMA IF NOT EXISTS {namespace}"
    keyword = "MANAGED LOCATION" if unity_catalog else "LOCATION"
    return f"CREATE SCHEMA IF NOT EXISTS {namespace} {keyword} '{location.replace(chr(39), '')}'"


class Lakehouse:
    """Table I/O for one ``catalog.schema``: names, DDL, reads, writes, the images MERGE, quarantine,
    views and RESTORE. The run log (``mfr.runlog.RunLog``) writes its table through it."""

    def __init__(self, spark: SparkSession, cfg: Config):
        self.spark = spark
        self.cfg = cfg
        catalog = cfg.settings.lakehouse.catalog
        schema = cfg.settings.lakehouse.schema
        self.namespace = f"{catalog}.{schema}" if catalog else schema
        self.storage = Storage.from_config(cfg)
        self._ready = False

    # ---- names and versions -------------------------------------------------------------------
    def name(self, table: str) -> str:
        return f"{self.namespace}.{table}"

    @functools.cached_property
    def on_databricks(self) -> bool:
        """Whether the session is a Databricks one (asked once per Lakehouse: it reads session settings)."""
        return databricks_session(self.spark)

    @functools.cached_property
    def unity_catalog(self) -> bool:
        """Whether the schema is in Unity Catalog: on Databricks, in a catalog other than the legacy Hive
        metastore. There a managed table's storage is chosen by the catalog (never ``<schema folder>/<table>``)
        and no one writes files into managed storage directly."""
        if not self.on_databricks:
            return False
        catalog = self.cfg.settings.lakehouse.catalog or self.spark.catalog.currentCatalog()
        return str(catalog).strip("`").lower() not in ("hive_metastore", "spark_catalog")

    def create_schema(self) -> None:
        """``CREATE SCHEMA IF NOT EXISTS``, at ``lakehouse.location`` when set (Glue wants a location; without
        one the schema would land in the cluster's default warehouse, on EMR its HDFS)."""
        self.spark.sql(schema_ddl(self.namespace, self.cfg.settings.lakehouse.location, self.unity_catalog))

    def ensure_schema(self) -> None:
        if self._ready:
            return
        # one listing of the schema's names answers the common case (every system table there) in one
        # metastore call; a table's own existence check loads its Delta log (4 per stage otherwise)
        try:
            present = self.table_names()
        except Exception:  # no schema yet (or a catalog that cannot list it): create, then look per table
            self.create_schema()
            present = set()
        for table, schema in SYSTEM_SCHEMAS.items():  # runs first: the run log exists before what runs record
            if table not in present:
                self._ensure_table(table, schema)
            elif table in ADDED_COLUMNS:
                self._add_missing_columns(table, schema, ADDED_COLUMNS[table])
        self._ready = True

    def _add_missing_columns(self, table: str, schema: T.StructType, added: tuple[str, ...]) -> None:
        """Give a system table made by an earlier mfr the columns added since (nullable, empty in old rows)."""
        have = set(self.spark.table(self.name(table)).columns)
        missing = [schema[c] for c in added if c not in have]
        if missing:
            cols = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in missing)
            self.spark.sql(f"ALTER TABLE {self.name(table)} ADD COLUMNS ({cols})")

    def table_names(self) -> set[str]:
        """Names of the schema's tables, lower case (an error when the schema does not exist)."""
        rows = self.spark.sql(f"SHOW TABLES IN {self.namespace}").collect()
        return {str(r["tableName"]).lower() for r in rows if not r["isTemporary"]}

    def _ensure_table(self, table: str, schema: T.StructType, attempts: int = 5) -> None:
        """Create ``table`` empty unless it exists. Two commands creating it at the same moment conflict in
        Delta's log or the catalog; the loser waits for the winner's table and uses it."""
        for attempt in range(attempts):
            try:
                if not self._is_new(table):
                    return
                self.create_empty(table, schema)
                return
            except Exception:
                if attempt == attempts - 1:
                    raise
                time.sleep(1.0 + attempt)

    def create_empty(self, table: str, schema: T.StructType) -> None:
        """Create ``table`` with no rows, mfr's properties and ``schema`` unless a table of that name exists."""
        props = creation_properties(schema, self.cfg.settings.lakehouse.keep_versions_days)
        self.spark.sql(create_table_ddl(self.name(table), schema, props))

    def schema_location(self) -> str | None:
        """Where the schema keeps its managed tables (``DESCRIBE SCHEMA``), None when the catalog does not say."""
        if not hasattr(self, "_schema_location"):
            rows = self.spark.sql(f"DESCRIBE SCHEMA EXTENDED {self.namespace}").collect()
            found = {str(r[0]).strip().lower(): str(r[1]).strip() for r in rows}
            self._schema_location = found.get("location") or None
        return self._schema_location

    def heal(self, table: str) -> bool:
        """Make creating ``table`` idempotent after a driver was killed while creating it: a location with
        a committed Delta log and no catalog entry is registered as it is (True); one without a committed
        log is cleared so the create can proceed (False)."""
        if self.unity_catalog:  # the catalog registers a table as it creates it: no half-made table to find
            return False
        where = self.schema_location()
        if not where:
            return False
        location = join(where, table)
        log_dir = join(location, "_delta_log")
        commits = [f for f in self.storage.list_files(log_dir, ".json") if f.rsplit("/", 1)[-1][:20].isdigit()]
        if commits:
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self.name(table)} USING delta LOCATION '{location}'")
            return True
        if self.storage.exists(location):
            self.storage.delete(location)  # files of a create that never committed: nothing to keep
        return False

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
    def _creating(self, writer: DataFrameWriter, schema: T.StructType, change_feed: bool = False) -> DataFrameWriter:
        return _creating(writer, schema, self.cfg.settings.lakehouse.keep_versions_days, change_feed)

    def changes(self, table: str, first: int, last: int) -> DataFrame:
        """Delta's change data feed of ``table`` from version ``first`` to ``last`` (an error where the table
        does not record it for the whole range)."""
        return (self.spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", int(first))
                .option("endingVersion", int(last)).table(self.name(table)))

    def _writer(self, df: DataFrame, mode: str, run: Run) -> DataFrameWriter:
        """A Delta writer whose commit carries the run (``userMetadata``): no session state is touched."""
        return df.write.format("delta").mode(mode).option("userMetadata", run.commit_metadata)

    @contextlib.contextmanager
    def commit_metadata(self, run: Run) -> Iterator[None]:
        """For MERGE and UPDATE, which take no writer options: the session's userMetadata, set only while
        the command runs and restored after. A session that refuses the setting (Databricks serverless)
        commits them without it: nothing reads a MERGE's or UPDATE's metadata back, it is for people."""
        with session_setting(self.spark, _USER_METADATA_CONF, run.commit_metadata):
            yield

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
        writer = self._writer(df, "overwrite", run)
        if self._is_new(table):
            writer = self._creating(writer.option("overwriteSchema", "true"), df.schema, change_feed=True)
        else:
            current = self.spark.table(self.name(table)).schema
            if _shape(current) != _shape(df.schema):  # only when columns really change
                self._keep_stats_columns(table, df.schema)
                writer = writer.option("overwriteSchema", "true")
        # a compaction committed meanwhile (Databricks' predictive optimization) makes Delta refuse the
        # overwrite: it wrote nothing, and the same rows are written again rather than the run failing
        retry_conflicts(lambda: writer.saveAsTable(self.name(table)))
        return self._version_written_by(table, run)

    def merge_stage_output(self, df: DataFrame, table: str, run: Run, key: str = "sample_key",
                           candidates: DataFrame | None = None) -> int | None:
        """Bring ``table`` to ``df``'s rows by ``key`` in one MERGE: rows new or whose content (every column
        but ``run_id``) differs are written, rows whose key is not in ``df`` deleted, the others left in their
        files. ``candidates`` (keys): the only rows that may differ, when the stage knows (only they are
        compared). Returns the version written, None when nothing differs (no commit). Another column set is a
        plain overwrite."""
        from mfr.incremental import row_digest

        self.ensure_schema()
        if self._is_new(table):
            return self.write_stage_output(df, table, run)
        current = self.read(table)
        if _shape(current.schema) != _shape(df.schema):
            return self.write_stage_output(df, table, run)
        if candidates is not None:
            keys = candidates.select(F.col(key)).distinct()
            df, current = df.join(keys, key, "left_semi"), current.join(keys, key, "left_semi")
        new = df.select("*", row_digest(df).alias("_new"))
        old = current.select(F.col(key).alias("_key"), row_digest(current).alias("_old"))
        changed = new.join(old, new[key] == old["_key"], "left").where(~F.col("_new").eqNullSafe(F.col("_old")))
        upserts = changed.select(*df.columns, F.lit(False).alias("_delete"), F.col("_old").isNotNull().alias("_update"))
        gone = old.join(df.select(F.col(key).alias("_key")), "_key", "left_anti")
        deletes = gone.select(*[(F.col("_key") if c == key else F.lit(None).cast(df.schema[c].dataType)).alias(c)
                                for c in df.columns], F.lit(True).alias("_delete"), F.lit(True).alias("_update"))
        # staged: the MERGE's source must not read the table it changes
        diff = self.stage(upserts.unionByName(deletes), run.run_id, f"merge-{table}")
        counted = diff.agg(F.count(F.lit(1)).alias("rows"), F.sum(F.col("_update").cast("int")).alias("touch")).collect()[0]
        if not counted["rows"]:
            return None
        if not counted["touch"]:  # new keys only: an append (no file of the table is read or rewritten)
            writer = self._writer(diff.select(*df.columns), "append", run)
            retry_conflicts(lambda: writer.saveAsTable(self.name(table)))
            return self._version_written_by(table, run)
        cols = [f"`{c}`" for c in df.columns]
        clause = (
            "WHEN MATCHED AND s._delete THEN DELETE "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(f't.{c} = s.{c}' for c in cols)} "
            f"WHEN NOT MATCHED AND NOT s._delete THEN INSERT ({', '.join(cols)}) VALUES ({', '.join(f's.{c}' for c in cols)})"
        )
        retry_conflicts(lambda: self._merge(table, diff, f"t.`{key}` = s.`{key}`", clause, run))
        return self._version_written_by(table, run)

    def _keep_stats_columns(self, table: str, schema: T.StructType) -> None:
        """Before a write that replaces the columns of ``table``: its statistics columns must all exist in the
        new columns (Delta refuses the write otherwise), so the list is narrowed to those both share."""
        props = {r["key"]: r["value"] for r in self.spark.sql(f"SHOW TBLPROPERTIES {self.name(table)}").collect()}
        listed = [c.strip() for c in (props.get(_STATS_PROPERTY) or "").split(",") if c.strip()]
        keep = [c for c in listed if c in set(schema.fieldNames())]
        if keep == listed:
            return
        if keep:
            self.spark.sql(f"ALTER TABLE {self.name(table)} SET TBLPROPERTIES ('{_STATS_PROPERTY}' = '{','.join(keep)}')")
        else:
            self.spark.sql(f"ALTER TABLE {self.name(table)} UNSET TBLPROPERTIES ('{_STATS_PROPERTY}')")

    def append(self, df: DataFrame, table: str, run: Run) -> None:
        self.ensure_schema()
        self._writer(df, "append", run).saveAsTable(self.name(table))

    def append_once(self, df: DataFrame, table: str, run: Run, app_id: str, version: int) -> None:
        """Append as an idempotent Delta commit: a second write with the same (app_id, version) is skipped,
        so a retried driver step never stores the same results twice."""
        self.ensure_schema()
        self._writer(df, "append", run).option("txnAppId", app_id).option("txnVersion", int(version)).saveAsTable(self.name(table))

    def quarantine(self, df: DataFrame, run: Run) -> None:
        """Append records that cannot be rows of the stage (columns as QUARANTINE_SCHEMA, less run data)."""
        out = df.select(
            F.lit(run.stage).alias("stage"),
            F.lit(run.run_id).alias("run_id"),
            *[F.col(c).cast(QUARANTINE_SCHEMA[c].dataType) for c in ("sample_key", "source", "reason", "raw_record", "source_file")],
            F.current_timestamp().alias("recorded_at"),
        )
        self.append(out, "quarantine", run)

    def create_view(self, view: str, table: str, where: str) -> None:
        """``<schema>.<view>`` = the rows of ``table`` that satisfy ``where`` (always the table's latest version)."""
        self.spark.sql(f"CREATE OR REPLACE VIEW {self.name(view)} AS SELECT * FROM {self.name(table)} WHERE {where}")

    def restore(self, table: str, version: int) -> int:
        """RESTORE ``table`` to ``version`` (a new version with the old content); returns the new version."""
        self.spark.sql(f"RESTORE TABLE {self.name(table)} TO VERSION AS OF {int(version)}")
        restored = self.current_version(table)
        assert restored is not None  # the table was just restored
        return restored

    @property
    def staging_root(self) -> str:
        """Where call journals, run leases and a run's intermediates go: ``llm.staging_dir``, else
        ``<lakehouse.location>/_mfr`` (beside the tables, reachable by every executor; not in Unity Catalog),
        else ``<warehouse>/_llm``."""
        s = self.cfg.settings
        if s.llm.staging_dir:
            return s.llm.staging_dir
        if s.lakehouse.location and not self.unity_catalog:  # Unity Catalog's managed storage takes no files
            return join(s.lakehouse.location, "_mfr")
        return str(Path(s.lakehouse.warehouse).resolve() / "_llm")

    # Folders of a run's intermediates under the staging root: removed when the run ends, swept after a kill.
    RUN_FOLDERS = ("intermediate", "requests")

    def stage(self, df: DataFrame, run_id: str, name: str) -> DataFrame:
        """Write an intermediate of a run as parquet under the staging root and read it back (computed once,
        lineage cut). Removed when the run ends (``drop_intermediates``)."""
        path = spark_path(join(self.staging_root, "intermediate", run_id, name))
        df.write.mode("overwrite").parquet(path)
        return self.spark.read.parquet(path)

    def drop_intermediates(self, run_id: str) -> None:
        for folder in self.RUN_FOLDERS:
            self.storage.delete(join(self.staging_root, folder, run_id))

    def sweep_intermediates(self, ended: set[str]) -> list[str]:
        """Remove intermediates left by runs that have ended (killed drivers' leftovers); returns their run
        ids. Only runs this schema's log says ended: a run started meanwhile, or another schema's run
        sharing the staging folder, is never touched."""
        swept = []
        for folder in self.RUN_FOLDERS:
            for run_id in self.storage.list_dirs(join(self.staging_root, folder)):
                if run_id in ended:
                    self.storage.delete(join(self.staging_root, folder, run_id))
                    swept.append(run_id)
        return sorted(set(swept))

    def quarantined_by_source(self, run: Run) -> dict[tuple[str | None, str], int]:
        """A run's quarantined rows counted by (source, reason)."""
        rows = self.read("quarantine").where(F.col("run_id") == run.run_id).groupBy("source", "reason").count().collect()
        return {(r["source"], r["reason"]): int(r["count"]) for r in rows}

    def add_fingerprints(self, prints: DataFrame, run: Run) -> int:
        """Store (image_id, phash, dhash) of images not fingerprinted yet (``image_fingerprints``, made on
        first use); returns the rows stored (-1 when the Delta in use reports none)."""
        self.ensure_schema()
        self._ensure_table("image_fingerprints", FINGERPRINTS_SCHEMA)
        source = prints.select("image_id", "phash", "dhash", F.lit(run.run_id).alias("run_id"))
        return self.insert_unless("image_fingerprints", source, "t.image_id = s.image_id", run)

    def append_records(self, df: DataFrame, table: str, run: Run) -> None:
        """Append a run's records (``run_id`` added) to a table of their own (near-duplicate clusters),
        made on first use with the lakehouse's table properties."""
        self.ensure_schema()
        out = df.withColumn("run_id", F.lit(run.run_id))
        writer = self._writer(out, "append", run)
        if self._is_new(table):
            writer = self._creating(writer, out.schema)
        retry_conflicts(lambda: writer.saveAsTable(self.name(table)))

    def _is_new(self, table: str) -> bool:
        """Whether the next write creates ``table`` (and so sets its properties): neither in the catalog nor
        left committed by a create that a kill interrupted (``heal`` registers that one)."""
        return not (self.exists(table) or self.heal(table))

    def add_images(self, images: DataFrame, run: Run, origin: str) -> int:
        """Insert images whose ``image_id`` is not stored yet (content-addressed: each stored once).

        ``images`` has image_id, bytes, width, height, format and unique image_id. Returns the images
        stored by this insert (the MERGE's own count), -1 when the Delta in use reports none.
        """
        self.ensure_schema()
        source = images.select(
            "image_id", "bytes", "width", "height", "format",
            F.length("bytes").cast("long").alias("num_bytes"),
            F.lit(origin).alias("origin"),
            F.lit(run.run_id).alias("run_id"),
        )
        return self.insert_unless("images", source, "t.image_id = s.image_id", run)

    def update_row(self, table: str, key: str, value: str, values: dict[str, object], run: Run | None) -> int:
        """Set ``values`` (Python values) on the rows of ``table`` whose ``key`` is ``value``: one SQL
        ``UPDATE`` (cheaper than a MERGE: no join, no source). Returns the rows changed."""
        # the system tables' schemas are known here: no round trip (one per update on Spark Connect)
        schema = SYSTEM_SCHEMAS.get(table) or self.spark.table(self.name(table)).schema
        sets = ", ".join(f"{c} = {sql_literal(v, schema[c].dataType)}" for c, v in values.items())
        where = f"{key} = {sql_literal(value, T.StringType())}"

        def update() -> list:
            with self.commit_metadata(run) if run is not None else contextlib.nullcontext():
                return self.spark.sql(f"UPDATE {self.name(table)} SET {sets} WHERE {where}").collect()

        rows = retry_conflicts(update)  # the same values again: an UPDATE by key is safe to repeat
        return int(rows[0][0]) if rows else 0

    def insert_unless(self, table: str, rows: DataFrame, match: str, run: Run) -> int:
        """Insert ``rows`` (aliased ``s``) unless a row of ``table`` (``t``) satisfies ``match``: one MERGE, so
        Delta's conflict check serializes two concurrent inserts that test the same condition. Returns the
        rows inserted (from the MERGE's own metrics). A commit Delta refuses for a concurrent one (another
        run adding images, a compaction) wrote nothing: the MERGE runs again on the newer table."""
        result = retry_conflicts(lambda: self._merge(table, rows, match, "WHEN NOT MATCHED THEN INSERT *", run))
        if "num_inserted_rows" in result:
            return int(result["num_inserted_rows"])
        return -1  # a Delta that reports no metrics: a caller that needs the count reads the table

    def _merge(self, table: str, source: DataFrame, on: str, clause: str, run: Run | None) -> dict[str, int]:
        """SQL ``MERGE INTO`` from a DataFrame (through a temporary view): the same on classic Spark and
        Spark Connect, where Delta's Python table API is not always there. Returns the MERGE's metrics."""
        view = f"_mfr_merge_{table}_{secrets.token_hex(4)}"
        source.createOrReplaceTempView(view)
        try:
            with self.commit_metadata(run) if run is not None else contextlib.nullcontext():
                rows = self.spark.sql(f"MERGE INTO {self.name(table)} t USING {view} s ON {on} {clause}").collect()
        finally:
            self.spark.catalog.dropTempView(view)
        return {k: int(v) for k, v in rows[0].asDict().items() if v is not None} if rows else {}
