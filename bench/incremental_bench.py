"""Benchmark incremental runs: a lakehouse built from N synthetic rows, then 1 % more rows as a new subset.

Side by side on one session and one lakehouse, with an instant teacher (``tests.openai_server``, latency 0):

1. every stage runs on N rows (full runs: the lakehouse is new);
2. a new subset of N/100 rows (another seed, new keys) is added to the dump and every stage runs again:
   incremental runs;
3. every stage runs again with nothing new (``incremental.noop_*``);
4. every stage runs with ``full=True`` on the same data: the full runs the incremental ones are compared with.

Figures: ``incremental.rows_processed_ratio.<stage>`` (rows the stage computed ÷ rows added),
``incremental.time_ratio.<stage>`` (incremental run's wall time ÷ the full run's), ``incremental.bytes_ratio``
(data bytes the incremental runs committed to collected, cleaned, distilled and selected ÷ those the full runs
committed, from Delta's operation metrics; ``_with_export`` counts the export's full write too), ``incremental.noop_files_written`` (files the stage tables gained in step 3) and
``incremental.noop_rows_processed``.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.llm_bench import Server
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.sample.synthetic import write_sample

STAGES = ("collect", "clean", "distill", "select", "export")
TABLES = ("collected", "cleaned", "distilled", "selected", "exported")


def add_subset(dump: Path, scratch: Path, rows: int, name: str = "synth-added") -> int:
    """Write ``rows`` synthetic rows of another seed into ``dump/<name>`` under new keys; returns the rows."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    write_sample(scratch, rows, seed=1, force=True)
    tables = [pq.read_table(p) for p in sorted(scratch.glob("*/*.parquet"))]
    added = pa.concat_tables(tables)
    added = added.set_column(added.schema.get_field_index("id"), "id", pc.add(added["id"], 10_000_000))
    added = added.set_column(added.schema.get_field_index("source"), "source", pa.array([name] * len(added)))
    (dump / name).mkdir()
    pq.write_table(added, dump / name / "train-00000-of-00001.parquet")
    return len(added)


def _written(lh: Lakehouse, versions: dict[str, int | None], tables: tuple[str, ...] = TABLES) -> tuple[int, int]:
    """(bytes, files) ``tables`` gained in the versions after ``versions`` (table → last version seen)."""
    nbytes = nfiles = 0
    for table, seen in versions.items():
        if table not in tables:
            continue
        for row in lh.history(table).collect():
            if seen is not None and row["version"] <= seen:
                continue
            m = row["operationMetrics"] or {}
            nbytes += int(m.get("numOutputBytes") or m.get("numTargetBytesAdded") or 0)
            nfiles += int(m.get("numFiles") or m.get("numTargetFilesAdded") or 0)
    return nbytes, nfiles


def _pass(spark, cfg, export_dir: Path, full: bool = False) -> dict:
    out = {}
    for stage in STAGES:
        extra = [f"export.out={export_dir}", "export.overwrite=true"] if stage == "export" else []
        start = time.perf_counter()
        result = run_stage(spark, cfg.with_overrides(extra), stage, full=full)
        out[stage] = (result, time.perf_counter() - start)
    return out


def run(spark, make_cfg, workdir: Path, rows: int = 100_000) -> dict[str, float]:
    dump = workdir / "incremental-dump"
    write_sample(dump, rows, seed=0, force=True)
    teacher = Server(workdir, latency=0.0, sigma=0.0, capacity=1024)
    try:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"), ("max_concurrency", 128))]
        cfg = make_cfg(f"collection.source={dump}", *sets)
        lh = Lakehouse(spark, cfg)
        export_dir = workdir / "incremental-export"
        _pass(spark, cfg, export_dir)
        added = add_subset(dump, workdir / "incremental-extra", max(1, rows // 100))
        before = {t: lh.current_version(t) for t in TABLES}
        grown = _pass(spark, cfg, export_dir)
        incr_bytes, _ = _written(lh, before, TABLES[:-1])
        incr_all, _ = _written(lh, before)
        before = {t: lh.current_version(t) for t in TABLES}
        noop = _pass(spark, cfg, export_dir)
        _, noop_files = _written(lh, before)
        before = {t: lh.current_version(t) for t in TABLES}
        full = _pass(spark, cfg, export_dir, full=True)
        full_bytes, _ = _written(lh, before, TABLES[:-1])
        full_all, _ = _written(lh, before)
    finally:
        teacher.close()
    figures: dict[str, float] = {"incremental.rows": float(rows), "incremental.rows_added": float(added)}
    for stage in STAGES:
        result, seconds = grown[stage]
        figures[f"incremental.mode_was_incremental.{stage}"] = float(result.mode.startswith("incremental"))
        figures[f"incremental.rows_processed_ratio.{stage}"] = result.metrics.get("incremental.rows_processed", 0.0) / added
        figures[f"incremental.time_ratio.{stage}"] = seconds / full[stage][1]
        figures[f"incremental.seconds.{stage}"] = seconds
        figures[f"incremental.full_seconds.{stage}"] = full[stage][1]
    figures["incremental.bytes_ratio"] = incr_bytes / max(1, full_bytes)  # the incremental stages' tables
    figures["incremental.bytes_ratio_with_export"] = incr_all / max(1, full_all)  # export is a full write by design
    figures["incremental.noop_files_written"] = float(noop_files)
    figures["incremental.noop_rows_processed"] = sum(r.metrics.get("incremental.rows_processed", 0.0) for r, _ in noop.values())
    figures["incremental.noop_seconds"] = sum(s for _, s in noop.values())
    return figures


REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmfr-real-sample"


def run_regenerate(spark, make_cfg, workdir: Path, rows: int | None = None, share: float = 0.3) -> dict[str, float]:
    """``regenerate.*`` on the real sample: a stand-in teacher (dump shapes, the gold answer) whose first sample
    answers wrong for ``share`` of the questions distills every row; select rejects; distill regenerates the
    rows rejected ``answer_mismatch`` (cap 1) and select judges them again. ``regenerate.yield`` = rows select
    kept after regeneration ÷ rows regenerated; ``regenerate.over_cap`` = rows past the cap."""
    from pyspark.sql import functions as F

    teacher = Server(workdir, latency=0.0, sigma=0.0, capacity=1024,
                     extra=("--responder", "dump", "--answers-from", str(REAL), "--first-wrong-share", str(share)))
    try:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"))]
        cfg = make_cfg(f"collection.source={REAL}", "distillation.overwrite=true", *sets,
                       "distillation.cot.regenerate_on=[answer_mismatch]", "distillation.cot.max_regenerations=1")
        for stage in ("collect", "clean", "distill", "select"):
            first = run_stage(spark, cfg, stage)
        distilled = run_stage(spark, cfg, "distill")
        judged = run_stage(spark, cfg, "select")
        again = run_stage(spark, cfg, "distill")
        lh = Lakehouse(spark, cfg)
        over = lh.read("distilled", again.output_version).where(F.col("cot_regenerations") > 1).count()
    finally:
        teacher.close()
    regenerated = distilled.metrics.get("regenerate.rows", 0.0)
    return {
        "regenerate.first_sample_wrong_share": share,
        "regenerate.rows_judged_first": float(first.rows_in),
        "regenerate.rows_rejected_first": float(first.rows_rejected),
        "regenerate.rows": regenerated,
        "regenerate.kept": judged.metrics.get("regenerate.kept", 0.0),
        "regenerate.yield": judged.metrics.get("regenerate.kept", 0.0) / regenerated if regenerated else 0.0,
        "regenerate.asked_after_cap": again.metrics.get("regenerate.rows", 0.0),
        "regenerate.over_cap": float(over),
    }
