"""Stage 1, collect: an HF-layout dump → canonical rows (+ content-addressed images).

* Subsets are chosen by ``collection.subsets``; ``collection.max_samples`` keeps the first N rows of
  each subset in dump order (file name, then row position), as ``datasets``' ``select(range(N))`` does.
* Dump names are mapped to canonical ones; the dump's own labels stay as ``source_*``.
* Image bytes go once into ``<schema>.images`` keyed by sha256; rows carry ``image_id`` only.
* Rows with no id, and duplicate (source, id) after the first, are quarantined; rows with no question
  at all are rejected ``question_missing``. Nothing is dropped.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import Config
from mfr.dump.hub import download_dump, is_hub_uri
from mfr.dump.layout import (
    DUMP_TO_CANONICAL,
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    DumpFile,
    subset_digests,
    unknown_columns,
    validate_files,
)
from mfr.dump.listing import list_dump
from mfr.stages.common import StageContext, StageOutput, blank, reason, sample_key_col
from mfr.stages.registry import Location
from mfr.storage import Storage, spark_path
from mfr.udfs import image_info_col

log = logging.getLogger(__name__)

# Canonical Spark type of every dump column once read (ints widen to long, floats to double).
_DUMP_TYPES: dict[str, T.DataType] = {
    "id": T.LongType(),
    "source": T.StringType(),
    "question": T.StringType(),
    "answer": T.StringType(),
    "ori_question": T.StringType(),
    "original_answer": T.StringType(),
    "caption": T.StringType(),
    "qwen3vl_235b_thinking_response": T.StringType(),
    "qwen3vl_4b_pass_rate": T.DoubleType(),
    "pass_rate": T.DoubleType(),
    "is_consistent": T.BooleanType(),
    "consistency_analysis": T.StringType(),
}

OUTPUT_COLUMNS = [
    "sample_key", "source", "subset", "id",
    "question", "original_question", "answer", "original_answer",
    "image_id", "caption", "caption_model", "caption_origin",
    "cot_response", "cot_model", "cot_origin",
    "source_pass_rate", "source_is_consistent", "source_consistency_analysis",
    "source_file", "source_row", "reject_reason", "reject_detail", "run_id",
]


def hub_cache(cfg: Config) -> str:
    """Where hub shards are downloaded: ``collection.cache_dir``, else beside the local warehouse."""
    return cfg.settings.collection.cache_dir or str(Path(cfg.settings.lakehouse.warehouse) / "hf-cache")


def locations(cfg: Config) -> list[Location]:
    """The dump (read) or, for a hub dataset, its download cache (written when configured; else beside the
    local warehouse)."""
    s = cfg.settings.collection
    if not s.source:
        return []
    if is_hub_uri(s.source):
        return [Location(hub_cache(cfg), "collection.cache_dir", "writable" if s.cache_dir else None)]
    return [Location(s.source, "collection.source", "readable")]


def replay_config(cfg: Config, earlier: dict[str, Any]) -> Config:
    """A ``--from-run`` rerun collects what the earlier run chose of the dump (source, subsets, cap, revision)."""
    old = json.loads(earlier["config_json"])["collection"]
    keys = ("source", "subsets", "max_samples", "revision")
    return cfg.with_overrides(f"collection.{k}={json.dumps(old[k])}" for k in keys)


def resolve_source(cfg: Config, storage: Storage) -> str:
    """A local or object-store dump root; hub datasets are downloaded first."""
    source = cfg.settings.collection.source
    if not is_hub_uri(source):
        return source
    return download_dump(
        source,
        hub_cache(cfg),
        subsets=cfg.settings.collection.subsets,
        max_samples=cfg.settings.collection.max_samples,
        workers=cfg.settings.collection.download_workers,
        revision=cfg.settings.collection.revision,
        storage=storage,
    )


def image_bytes(columns: dict[str, str], name: str) -> Column:
    """The bytes of a file's image column ``name`` (``columns``: its column kinds): a ``{bytes}`` struct or
    binary; null where the file has no such column."""
    kind = columns.get(name)
    if kind == "image":
        return F.col(f"{name}.bytes").cast("binary")
    if kind == "binary":
        return F.col(name).cast("binary")
    return F.lit(None).cast("binary")


def _read_group(spark: SparkSession, subset: str, files: list[DumpFile]) -> DataFrame:
    """Read files sharing one set of columns and bring them to the dump's full, typed column set."""
    df = spark.read.parquet(*[spark_path(f.path) for f in files])
    present = set(files[0].columns)
    cols = []
    for name, dtype in _DUMP_TYPES.items():
        cols.append((F.col(name) if name in present else F.lit(None)).cast(dtype).alias(name))
    return df.select(
        *cols,
        image_bytes(files[0].columns, "image").alias("image_bytes"),
        F.lit(subset).alias("subset"),
        F.col("_metadata.file_path").alias("source_file"),
        F.col("_metadata.row_index").cast("long").alias("source_row"),
    )


def read_dump(spark: SparkSession, files: list[DumpFile], max_samples: int | None) -> tuple[DataFrame, dict[str, int]]:
    """All chosen rows with dump names, plus rows taken per subset (counted from footers when local)."""
    frames: list[DataFrame] = []
    taken: dict[str, int] = {}
    subsets = sorted({f.subset for f in files})
    for subset in subsets:
        groups: dict[tuple[tuple[str, str], ...], list[DumpFile]] = {}
        for f in files:
            if f.subset == subset:
                groups.setdefault(tuple(sorted(f.columns.items())), []).append(f)
        df = None
        for group in groups.values():
            part = _read_group(spark, subset, group)
            df = part if df is None else df.unionByName(part)
        assert df is not None
        counts = [f.num_rows for f in files if f.subset == subset]
        known = [c for c in counts if c is not None]
        available = sum(known) if len(known) == len(counts) else df.count()
        if max_samples is not None and available > max_samples:
            df = df.orderBy("source_file", "source_row").limit(max_samples)
            available = max_samples
        taken[subset] = int(available)
        frames.append(df)
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame)
    return out, taken


def canonical_rows(dump: DataFrame, cfg: Config, run_id: str) -> DataFrame:
    """Dump names → canonical names, keys, provenance and the collect-level rejection."""
    pass_rate = F.coalesce(F.col("qwen3vl_4b_pass_rate"), F.col("pass_rate"))
    source = F.coalesce(F.when(~blank(F.col("source")), F.col("source")), F.col("subset"))
    has_cot = ~blank(F.col("qwen3vl_235b_thinking_response"))
    has_caption = ~blank(F.col("caption"))
    df = dump.select(
        sample_key_col(source, F.col("id")).alias("sample_key"),
        source.alias("source"),
        "subset",
        "id",
        "question",
        F.col("ori_question").alias(DUMP_TO_CANONICAL["ori_question"]),
        "answer",
        "original_answer",
        F.when(F.col("image_bytes").isNotNull(), F.sha2("image_bytes", 256)).alias("image_id"),
        "caption",
        F.when(has_caption, F.lit(cfg.settings.collection.caption_model)).alias("caption_model"),
        F.when(has_caption, F.lit("dump")).alias("caption_origin"),
        F.col("qwen3vl_235b_thinking_response").alias("cot_response"),
        F.when(has_cot, F.lit(cfg.settings.collection.cot_model)).alias("cot_model"),
        F.when(has_cot, F.lit("dump")).alias("cot_origin"),
        pass_rate.alias("source_pass_rate"),
        F.col("is_consistent").alias("source_is_consistent"),
        F.col("consistency_analysis").alias("source_consistency_analysis"),
        "source_file",
        "source_row",
        F.when(blank(F.col("question")) & blank(F.col("ori_question")), reason("collect", "question_missing"))
        .cast("string")
        .alias("reject_reason"),
        F.lit(None).cast("string").alias("reject_detail"),  # the code says it all at collect
        F.lit(run_id).alias("run_id"),
        "image_bytes",
    )
    return df


def _raw_record(columns: list[str]) -> F.Column:
    """The record as JSON for the quarantine (image bytes replaced by their id)."""
    return F.to_json(F.struct(*[c for c in columns if c not in ("image_bytes", "run_id")]))


# Duplicated keys up to this many go to every task (~20 MB); more are joined by a shuffle.
_BROADCAST_KEYS = 100_000
# Up to this many duplicated ids, the quarantine's read of the dump is pruned by id.
_PRUNE_IDS = 1000


def split_quarantine(rows: DataFrame) -> tuple[DataFrame, DataFrame | None, int, set[str]]:
    """(rows that stay, quarantined records or None when there are none, number of duplicate keys, subsets
    holding a row of a duplicated key)."""
    columns = rows.columns
    missing_id = F.col("id").isNull()
    # One pass over the keys finds both problems (rows without an id, keys seen more than once) and, for a
    # duplicated key, its first row in dump order: no row is ranked or shuffled afterwards.
    problems = (
        rows.groupBy(missing_id.alias("no_id"), "sample_key")
        .agg(F.count(F.lit(1)).alias("count"), F.min("id").alias("id"),
             F.min(F.struct("source_file", "source_row")).alias("first"), F.collect_set("subset").alias("subsets"))
        .where(F.col("no_id") | (F.col("count") > 1))
        .collect()
    )
    if not problems:
        return rows, None, 0, set()
    firsts = [(r["sample_key"], r["first"]["source_file"], r["first"]["source_row"]) for r in problems if not r["no_id"]]
    if firsts:
        # a table of the duplicated keys only, sent whole to every task while it is small (no row is shuffled)
        table = rows.sparkSession.createDataFrame(firsts, "sample_key string, _first_file string, _first_row long")
        rows = rows.join(F.broadcast(table) if len(firsts) <= _BROADCAST_KEYS else table, "sample_key", "left")
        is_first = F.col("source_file").eqNullSafe(F.col("_first_file")) & F.col("source_row").eqNullSafe(F.col("_first_row"))
        is_dup = F.col("_first_row").isNotNull() & ~is_first
    else:
        is_dup = F.lit(False)
    why = F.when(missing_id, reason("collect", "missing_id")).when(is_dup, reason("collect", "duplicate_key"))
    tagged = rows.withColumn("_q", why)
    problem_rows = tagged
    if len(firsts) <= _PRUNE_IDS:
        # implied by a reason, and pushed down to the dump's files: row groups without a missing id or a
        # duplicated id are not read again (with their images) just to find the few quarantined rows
        ids = sorted({int(r["id"]) for r in problems if not r["no_id"]})
        problem_rows = tagged.where(missing_id | F.col("id").isin(ids))
    quarantine = problem_rows.where(F.col("_q").isNotNull()).select(
        F.when(~missing_id, F.col("sample_key")).alias("sample_key"),
        "source",
        F.col("_q").alias("reason"),
        _raw_record(columns).alias("raw_record"),
        "source_file",
    )
    kept = tagged.where(F.col("_q").isNull()).select(*columns)
    subsets = {s for r in problems if not r["no_id"] for s in r["subsets"]}
    return kept, quarantine, len(firsts), subsets


def distinct_images(rows: DataFrame) -> DataFrame:
    """Each distinct image once, with its header's width, height and format."""
    return (
        rows.where(F.col("image_bytes").isNotNull())
        .select("image_id", F.col("image_bytes").alias("bytes"))
        .dropDuplicates(["image_id"])
        .withColumn("_info", image_info_col("bytes"))
        .select("image_id", "bytes", "_info.width", "_info.height", "_info.format")
    )


def collect(ctx: StageContext) -> StageOutput:
    spark, cfg, run_id = ctx.spark, ctx.cfg, ctx.run_id
    source = resolve_source(cfg, ctx.lakehouse.storage)
    files = list_dump(source, spark, cfg.settings.collection.subsets)
    validate_files(files)
    extra = sorted({c for f in files for c in unknown_columns(f.columns)})
    if extra:
        log.warning("collect: ignoring columns the pipeline does not use: %s", ", ".join(extra))
    digests = subset_digests(files)
    metrics: dict[str, float] = {f"{DIGEST_METRIC}{s}": float(d) for s, d in digests.items()}
    metrics["files"] = float(len(files))
    metrics["ignored_columns"] = float(len(extra))
    if ctx.incremental and previous_digests(ctx) == {k: float(v) for k, v in digests.items()}:  # the same files
        metrics["incremental.subsets_read"] = 0.0
        metrics.update(_previous(ctx, DUPLICATES_METRIC))  # what the next run needs to know stays on record
        last = ctx.lakehouse.read("collected", ctx.plan.previous_version if ctx.plan else None)
        return StageOutput(rows=last, rows_in=0, metrics=metrics, nothing_new=True)
    keep = unchanged_subsets(ctx, digests)
    read = [f for f in files if keep is None or f.subset not in keep]
    metrics["incremental.subsets_read"] = float(len({f.subset for f in read}))
    taken: dict[str, int] = {}
    rows = None
    if read:
        dump, taken = read_dump(spark, read, cfg.settings.collection.max_samples)
        rows = canonical_rows(dump, cfg, run_id)
    metrics["incremental.rows_processed"] = float(sum(taken.values()))
    if keep:  # subsets whose files are unchanged: their rows as the last run wrote them
        last = ctx.lakehouse.read("collected", ctx.plan.previous_version if ctx.plan else None)
        carried = last.where(F.col("subset").isin(sorted(keep))).select(
            *OUTPUT_COLUMNS, F.lit(None).cast("binary").alias("image_bytes"))
        counted = {r["subset"]: int(r["count"]) for r in carried.groupBy("subset").count().collect()}
        taken.update({s: counted.get(s, 0) for s in keep})
        rows = carried if rows is None else rows.unionByName(carried)
    assert rows is not None  # some subset was read or carried
    kept, quarantine, n_dup_keys, dup_subsets = split_quarantine(rows)  # across every subset, carried or read
    metrics.update({f"rows_taken.{s}": float(n) for s, n in sorted(taken.items())})
    metrics["duplicate_keys"] = float(n_dup_keys)
    metrics.update({f"{DUPLICATES_METRIC}{s}": 1.0 for s in sorted(dup_subsets)})
    candidates = None
    if keep:  # rows of the subsets read (now or before) and rows quarantined now may differ from the table
        fresh = F.col("subset").isin(sorted(keep))
        candidates = kept.where(~fresh).select("sample_key").unionByName(last.where(~fresh).select("sample_key"))
        if quarantine is not None:
            candidates = candidates.unionByName(quarantine.where(F.col("sample_key").isNotNull()).select("sample_key"))
    return StageOutput(
        rows=kept.select(*OUTPUT_COLUMNS),
        rows_in=sum(taken.values()),
        quarantine=quarantine,
        images=distinct_images(rows),
        image_origin="collect",
        metrics=metrics,
        candidates=candidates,
    )


DIGEST_METRIC = "dump.subset_digest."
DUPLICATES_METRIC = "dump.duplicate_keys_in."


def _previous(ctx: StageContext, prefix: str) -> dict[str, float]:
    """The last run's metrics named ``prefix``…"""
    metrics = (ctx.plan.previous or {}).get("metrics") or {} if ctx.plan else {}
    return {k: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def previous_digests(ctx: StageContext) -> dict[str, float]:
    return {k[len(DIGEST_METRIC):]: v for k, v in _previous(ctx, DIGEST_METRIC).items()}


def unchanged_subsets(ctx: StageContext, digests: dict[str, int]) -> set[str] | None:
    """Subsets an incremental collect carries from its last run: files listed as that run read them. Which of
    two rows of a duplicated key stays depends on both files: when a subset holding one changed or left, every
    subset holding one is read again (and its duplicates found again). None in a full run."""
    if not ctx.incremental:
        return None
    before = previous_digests(ctx)
    same = {s for s, d in digests.items() if before.get(s) == float(d)}
    duplicated = {k[len(DUPLICATES_METRIC):] for k in _previous(ctx, DUPLICATES_METRIC)}
    if duplicated - same:  # a subset holding a duplicated key changed or left: every such subset is read again
        same -= duplicated
    return same


__all__ = ["collect", "OUTPUT_COLUMNS", "REQUIRED_COLUMNS", "OPTIONAL_COLUMNS"]
