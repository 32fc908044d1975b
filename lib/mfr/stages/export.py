"""Export: a selection (at a pinned version) → files a trainer reads, plus a manifest Delta table.

Into ``export.out``:

* ``llamafactory/``: ``dataset_info.json`` (entries ``mfr_sft`` and, with an RL split, ``mfr_rl``),
  ``mfr_sft/part-NNNNN.jsonl`` sharegpt records, ``images/ab/<image_id>.<ext>`` written once each, and
  ``mfr_8b.yaml`` (``conf/llamafactory/mfr_8b.yaml`` with ``dataset_dir`` set to this folder);
* ``hf/``: ``data/train-NNNNN-of-MMMMM.parquet`` (and ``rl-…``) with the dump's column names and the
  ``Image`` feature, and a dataset card; pushed to the hub when ``export.hf.repo_id`` is set.

``<schema>.exported`` gets one row per input row: exported (``reject_reason`` null, with its split
and file) or rejected (``image_missing``, ``question_missing``, ``image_tag_count``, ``cot_unusable``,
``caption_missing``). Files are deterministic: the same version exported twice gives the same bytes.
Data never passes through the driver: each partition writes its own file.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import Config
from mfr.export.card import dataset_card, quotas
from mfr.export.files import write_hf_part, write_images, write_json, write_jsonl_part
from mfr.export.sharegpt import dataset_info_entry, image_file_name, sharegpt_record
from mfr.lakehouse import Lakehouse
from mfr.partitions import run_per_partition
from mfr.resources import train_recipe
from mfr.stages.common import StageContext, StageOutput, persist
from mfr.stages.registry import Location
from mfr.storage import Storage, is_local, join, local_path
from mfr.vectorized import pandas_udf, python_udf

log = logging.getLogger(__name__)

SUBSETS = {
    "selected": "reject_reason IS NULL",
    "hard": "reject_reason IS NULL AND pass_rate < 1",
    "hardest": "reject_reason IS NULL AND pass_rate = 0",
    "all": "TRUE",
}
OWNED = ("llamafactory", "hf", "EXPORT.json")  # what an export writes; an overwrite removes only these
TRAIN_YAML = train_recipe()

_RECORD = T.StructType([T.StructField("record", T.StringType()), T.StructField("reason", T.StringType())])


def _record_udf(thinking: bool, with_caption: bool):
    @pandas_udf(_RECORD)
    def build(question: pd.Series, cot: pd.Series, caption: pd.Series, path: pd.Series) -> pd.DataFrame:
        out = []
        for q, c, cap, p in zip(question, cot, caption, path):
            rec, why = sharegpt_record(q, c, p, cap, thinking=thinking, with_caption=with_caption)
            out.append((json.dumps(rec, ensure_ascii=False) if rec else None, why))
        return pd.DataFrame(out, columns=["record", "reason"])

    return build


def _image_path(image_id: F.Column, fmt: F.Column) -> F.Column:
    return python_udf(lambda i, f: image_file_name(i, f) if i else None, T.StringType())(image_id, fmt)


def prepare_out(storage: Storage, out: str | None, overwrite: bool) -> str:
    """The export folder (local, Volume or object store), checked before anything is computed: a non-empty
    folder is refused unless ``export.overwrite``; then only what an export writes is removed."""
    if not out:
        raise ValueError("export.out is not set: pass --set export.out=DIR")
    if storage.list_files(out):
        if not overwrite:
            raise FileExistsError(f"{out} is not empty: choose another export.out or set export.overwrite=true")
        for name in OWNED:
            storage.delete(join(out, name))
    if is_local(out):
        os.makedirs(local_path(out), exist_ok=True)
    return out


def rl_split(ok: DataFrame, n: int | None, seed: int) -> tuple[DataFrame, dict[str, int]]:
    """Mark a seeded uniform sample of ``n`` rows, per-source proportions kept (``_rl`` column)."""
    if not n:
        return ok.withColumn("_rl", F.lit(False)), {}
    counts = {r["source"]: int(r["count"]) for r in ok.groupBy("source").count().collect()}
    q = quotas(counts, int(n))
    order = F.xxhash64(F.lit(int(seed)), F.col("sample_key"))
    ranked = ok.withColumn("_rank", F.row_number().over(Window.partitionBy("source").orderBy(order, "sample_key")))
    quota = F.coalesce(F.element_at(F.create_map(*[x for k, v in q.items() for x in (F.lit(k), F.lit(v))]), F.col("source")),
                       F.lit(0)) if q else F.lit(0)
    return ranked.withColumn("_rl", F.col("_rank") <= quota).drop("_rank"), q


def _parts(n: int, shard_rows: int) -> int:
    return max(1, math.ceil(n / max(1, shard_rows)))


def _write_jsonl(storage: Storage, df: DataFrame, folder: str, shard_rows: int) -> int:
    n = df.count()
    if n == 0:
        return 0
    parts = _parts(n, shard_rows)
    ordered = df.select("sample_key", "record").repartition(parts, "sample_key").sortWithinPartitions("sample_key")
    run_per_partition(ordered, lambda rows, i: write_jsonl_part(storage, rows, folder, i))
    return n


def _write_hf(storage: Storage, df: DataFrame, folder: str, split: str, shard_rows: int) -> int:
    n = df.count()
    parts = _parts(n, shard_rows)
    ordered = df.repartition(parts, "_key").sortWithinPartitions("_key").drop("_key")
    run_per_partition(ordered, lambda rows, i: write_hf_part(storage, rows, folder, split, i, parts))
    return n


def _hf_rows(df: DataFrame, images: DataFrame) -> DataFrame:
    """Rows in the dump's column names, image bytes joined in (the trace is the exported one)."""
    joined = df.join(images.select("image_id", "bytes"), "image_id")
    return joined.select(
        F.col("sample_key").alias("_key"), "source", "id", F.col("original_question").alias("ori_question"),
        "original_answer", "question", "answer", "caption", F.col("cot_response").alias("qwen3vl_235b_thinking_response"),
        "pass_rate", "is_consistent", "consistency_analysis",
        F.struct(F.col("bytes").alias("bytes"), F.element_at(F.split("_image_file", "/"), -1).alias("path")).alias("image"),
    )


def _train_yaml(dataset_dir: str, thinking: bool) -> str:
    text = TRAIN_YAML.read_text()
    where = os.path.abspath(local_path(dataset_dir)) if is_local(dataset_dir) else dataset_dir
    text = text.replace("dataset_dir: lakehouse/export/llamafactory", f"dataset_dir: {where}")
    if not thinking:
        text = text.replace("template: qwen3_vl", "template: qwen3_vl_nothink")
    return text


def export(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    subset = cfg.settings.export.subset
    if subset not in SUBSETS:
        raise ValueError(f"export.subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    formats = list(cfg.settings.export.formats)
    unknown = set(formats) - {"llamafactory", "hf"}
    if unknown:
        raise ValueError(f"export.formats: unknown {sorted(unknown)}; use llamafactory and/or hf")
    storage = ctx.lakehouse.storage
    if ctx.incremental and ctx.plan is not None:
        if _still_exported(ctx):
            return StageOutput(rows=ctx.lakehouse.read("exported", ctx.plan.previous_version), rows_in=0, nothing_new=True)
        ctx.plan.mode, ctx.plan.why = "full", f"{cfg.settings.export.out} no longer holds this export"
    out = prepare_out(storage, cfg.settings.export.out, bool(cfg.settings.export.overwrite))
    thinking = bool(cfg.settings.export.thinking)

    rows = ctx.read_input("selected").where(SUBSETS[subset])
    rows_in = rows.count()
    built = persist(ctx, build_records(ctx, rows, thinking, bool(cfg.settings.export.caption_in_answer)), "export-records")
    ok, rl_quotas = rl_split(built.where(F.col("reason").isNull()), cfg.settings.export.rl.rows, int(cfg.settings.export.rl.seed))
    ok = persist(ctx, ok, "export-ok")
    exclude = bool(cfg.settings.export.rl.exclude_from_sft)
    sft = ok.where(~F.col("_rl")) if exclude else ok
    rl = ok.where(F.col("_rl")) if rl_quotas else None
    n_rl = rl.count() if rl is not None else 0
    rl = rl if n_rl else None

    images = ctx.lakehouse.read("images").join(ok.select("image_id").distinct(), "image_id", "left_semi")
    metrics: dict[str, float] = {"export.rl_rows": float(n_rl)}
    if "llamafactory" in formats:
        metrics.update(_write_llamafactory(storage, join(out, "llamafactory"), sft, rl, ok, images, thinking,
                                           int(cfg.settings.export.shard_rows)))
    if "hf" in formats:
        metrics.update(_write_hf_dataset(ctx, join(out, "hf"), sft, rl, images, subset))
    write_json(storage, join(out, "EXPORT.json"), {"run_id": ctx.run_id, "selected_version": ctx.input_versions["selected"],
                                     "subset": subset, "formats": formats, "rl_quotas": rl_quotas})
    return StageOutput(rows=_manifest(ctx, built, ok, subset, out, exclude), rows_in=rows_in, metrics=metrics)


def _still_exported(ctx: StageContext) -> bool:
    """Whether export.out still holds an export of the version this run reads (its EXPORT.json says so; the
    settings are the last run's, or the run would not be incremental)."""
    out = ctx.cfg.settings.export.out
    try:
        written = json.loads(ctx.lakehouse.storage.read_text(join(out, "EXPORT.json"))) if out else {}
    except (FileNotFoundError, ValueError):
        return False
    return bool(written.get("selected_version") == ctx.input_versions["selected"])


def build_records(ctx: StageContext, rows: DataFrame, thinking: bool, with_caption: bool) -> DataFrame:
    """Every row with its sharegpt ``record`` (JSON) or the ``reason`` it cannot be one, and its image file."""
    images_meta = ctx.lakehouse.read("images").select("image_id", "format").dropDuplicates(["image_id"])
    rows = rows.drop("run_id").withColumnRenamed("reject_reason", "selection_reject_reason")
    with_meta = rows.join(images_meta, "image_id", "left").withColumn(
        "_image_file", F.when(F.col("format").isNotNull(), _image_path(F.col("image_id"), F.col("format")))
    )
    return with_meta.withColumn(
        "_r", _record_udf(thinking, with_caption)(F.col("question"), F.col("cot_response"), F.col("caption"), F.col("_image_file"))
    ).select("*", F.col("_r.record").alias("record"), F.col("_r.reason").alias("reason")).drop("_r")


def _write_llamafactory(storage: Storage, lf: str, sft: DataFrame, rl: DataFrame | None, ok: DataFrame,
                        images: DataFrame, thinking: bool, shard_rows: int) -> dict[str, float]:
    """sharegpt JSONL parts, every image once, dataset_info.json and the training recipe."""
    metrics = {"export.sft_rows": float(_write_jsonl(storage, sft, join(lf, "mfr_sft"), shard_rows))}
    info = {"mfr_sft": dataset_info_entry("mfr_sft")}
    if rl is not None:
        _write_jsonl(storage, rl, join(lf, "mfr_rl"), shard_rows)
        info["mfr_rl"] = dataset_info_entry("mfr_rl")
    files = images.join(ok.select("image_id", F.col("_image_file").alias("file")).distinct(), "image_id")
    written = run_per_partition(files.select("file", "bytes"), lambda rows, _: write_images(storage, rows, lf))
    metrics["export.images_written"] = float(written)
    write_json(storage, join(lf, "dataset_info.json"), info)
    storage.write_text(join(lf, "mfr_8b.yaml"), _train_yaml(lf, thinking))
    return metrics


def _write_hf_dataset(ctx: StageContext, hf: str, sft: DataFrame, rl: DataFrame | None, images: DataFrame,
                      subset: str) -> dict[str, float]:
    """Parquet shards in the dump's names, the dataset card, and the hub push when a repo is named."""
    cfg, storage = ctx.cfg, ctx.lakehouse.storage
    shard_rows = int(cfg.settings.export.shard_rows)
    splits = {"train": sft, **({"rl": rl} if rl is not None else {})}
    per_source: dict[str, dict[str, int]] = {}
    for split, df in splits.items():
        _write_hf(storage, _hf_rows(df, images), join(hf, "data"), split, shard_rows)
        for r in df.groupBy("source").count().collect():
            per_source.setdefault(r["source"], {})[split] = int(r["count"])
    # no run id or time here: the same version exported twice gives the same card (EXPORT.json has the run)
    build = {"table": ctx.lakehouse.name("selected"), "version": ctx.input_versions["selected"], "subset": subset,
             "thinking": bool(cfg.settings.export.thinking), "caption_in_answer": bool(cfg.settings.export.caption_in_answer),
             "rl_rows": sum(c.get("rl", 0) for c in per_source.values()), "rl_seed": cfg.settings.export.rl.seed}
    name = cfg.settings.export.hf.repo_id or "mmfr-export"
    storage.write_text(join(hf, "README.md"), dataset_card(name, per_source, build, list(splits)))
    if not cfg.settings.export.hf.repo_id:
        return {}
    import tempfile

    from mfr.export.hub_push import push_folder

    with tempfile.TemporaryDirectory(prefix="mfr-push-") as scratch:  # the hub client uploads local files
        folder = local_path(hf) if is_local(hf) else storage.download_folder(hf, scratch)
        push_folder(Path(folder), cfg.settings.export.hf.repo_id, cfg.settings.export.hf.token_env,
                    private=bool(cfg.settings.export.hf.private), endpoint=cfg.settings.export.hf.endpoint)
    return {"export.pushed": 1.0}


def _manifest(ctx: StageContext, built: DataFrame, ok: DataFrame, subset: str, out: str, exclude: bool) -> DataFrame:
    """One row per input row: its image file and split when exported, else the reason."""
    return built.join(ok.select("sample_key", "_rl"), "sample_key", "left").select(
        "sample_key", "source", "image_id",
        F.when(F.col("reason").isNull(), F.col("_image_file")).alias("image_file"),
        F.when(F.col("reason").isNotNull(), F.lit(None).cast("string"))
        .when(F.col("_rl") & F.lit(exclude), F.lit("rl"))
        .when(F.col("_rl"), F.lit("sft+rl")).otherwise(F.lit("sft")).alias("split"),
        F.lit(subset).alias("subset"),
        F.lit(str(out)).alias("out"),
        F.col("reason").alias("reject_reason"),
        F.lit(None).cast("string").alias("reject_detail"),  # export's codes are exact (mfr.export.sharegpt)
        F.lit(ctx.run_id).alias("run_id"),
    )


def locations(cfg: Config) -> list[Location]:
    """The export folder, written by executors and the driver."""
    out = cfg.settings.export.out
    return [Location(out, "export.out", "writable")] if out else []


def chosen_versions(cfg: Config, lh: Lakehouse) -> dict[str, int]:
    """The selected version the config asks for (``export.select_run``'s output, or ``export.table_version``);
    none: the published one."""
    from mfr.runlog import RunLog

    run_id = cfg.settings.export.select_run
    if run_id:
        earlier = RunLog(lh).get(run_id)
        if earlier["stage"] != "select" or earlier["output_version"] is None:
            raise ValueError(f"export.select_run {run_id} is not a finished select run")
        return {"selected": int(earlier["output_version"])}
    version = cfg.settings.export.table_version
    return {"selected": int(version)} if version is not None else {}
