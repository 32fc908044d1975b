"""Run a stage: record the run, compute, write one Delta version, check the accounting, finish the run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import SparkSession

from mfr.config import Config
from mfr.lakehouse import STAGE_TABLES, Lakehouse
from mfr.stages.common import StageContext, StageOutput

log = logging.getLogger(__name__)

StageFn = Callable[[StageContext], StageOutput]

# Tables each stage reads (pinned to a version for the whole run).
STAGE_INPUTS: dict[str, list[str]] = {
    "collect": [],
    "clean": ["collected"],
    "distill": ["cleaned"],
    "select": ["distilled"],
    "export": ["selected"],
}


def _stage_fns() -> dict[str, StageFn]:
    from mfr.stages.clean import clean
    from mfr.stages.collect import collect
    from mfr.stages.distill import distill
    from mfr.stages.export import export
    from mfr.stages.select import select

    return {"collect": collect, "clean": clean, "distill": distill, "select": select, "export": export}


# Stages of the pipeline in order; those without a function here are not built yet.
PIPELINE = ["collect", "clean", "distill", "select", "export"]


class AccountingError(RuntimeError):
    """rows_in != kept + rejected + quarantined: something was lost or invented."""


@dataclass
class RunResult:
    run_id: str
    stage: str
    output_table: str
    output_version: int
    rows_in: int
    rows_kept: int
    rows_rejected: int
    rows_quarantined: int
    metrics: dict[str, float]


def input_tables(stage: str, cfg: Config, lh: Lakehouse) -> list[str]:
    """Tables a stage reads. Distill reads cleaned when it exists (else collected) unless configured."""
    if stage == "distill":
        chosen = cfg.get("distillation.input_table")
        if chosen:
            return [chosen]
        return ["cleaned"] if lh.exists("cleaned") else ["collected"]
    return STAGE_INPUTS.get(stage, [])


def built_stages() -> list[str]:
    return [s for s in PIPELINE if s in _stage_fns()]


def run_stage(spark: SparkSession, cfg: Config, stage: str, from_run: str | None = None) -> RunResult:
    fns = _stage_fns()
    if stage not in fns:
        raise ValueError(f"stage '{stage}' is not built yet; built: {', '.join(built_stages())}")
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    if from_run:
        earlier = lh.get_run(from_run)
        if earlier["stage"] != stage:
            raise ValueError(f"run {from_run} is a {earlier['stage']} run, not {stage}")
        cfg = _replay_inputs(cfg, earlier)
        pinned = dict(earlier["input_versions"] or {})
    else:
        pinned = _chosen_versions(stage, cfg, lh)
    inputs = {}
    for table in input_tables(stage, cfg, lh):
        version = pinned.get(table, lh.current_version(table))
        if version is None:
            raise ValueError(f"stage '{stage}' reads {lh.name(table)}, which does not exist yet: run its stage first")
        inputs[table] = int(version)
    run = lh.start_run(stage, cfg, inputs, from_run)
    timings: dict[str, float] = {}

    @contextmanager
    def timed(phase: str):
        start = time.perf_counter()
        yield
        timings[f"time_s.{phase}"] = time.perf_counter() - start

    try:
        with timed("compute"):
            out = fns[stage](StageContext(spark, cfg, run, lh, inputs))
        table = STAGE_TABLES[stage]
        if out.images is not None:
            with timed("images"):
                lh.add_images(out.images, run, out.image_origin)
        with timed("write"):
            version = lh.write_stage_output(out.rows, table, run)
        if out.quarantine is not None:
            with timed("quarantine"):
                lh.quarantine(out.quarantine, run)
        written = lh.read(table, version)
        by_reason = {r["reject_reason"]: int(r["count"]) for r in written.groupBy("reject_reason").count().collect()}
        kept = by_reason.pop(None, 0)
        rejected = sum(by_reason.values())
        quarantined = lh.quarantined_count(run) if out.quarantine is not None else 0
        metrics = {**out.metrics, **timings, **{f"rejected.{k}": float(v) for k, v in by_reason.items()}}
        if out.after_write is not None:
            metrics.update(out.after_write(spark, lh, version))
        if out.rows_in != kept + rejected + quarantined:
            raise AccountingError(
                f"{stage}: rows_in {out.rows_in} != kept {kept} + rejected {rejected} + quarantined {quarantined}"
            )
        lh.finish_run(
            run,
            output_version=version,
            rows_in=out.rows_in,
            rows_kept=kept,
            rows_rejected=rejected,
            rows_quarantined=quarantined,
            metrics=metrics,
        )
    except BaseException as exc:
        lh.fail_run(run, f"{type(exc).__name__}: {exc}")
        raise
    return RunResult(run.run_id, stage, lh.name(table), version, out.rows_in, kept, rejected, quarantined, metrics)


def _chosen_versions(stage: str, cfg: Config, lh: Lakehouse) -> dict[str, int]:
    """Input versions a user asked for by config (export: a selected version or a select run)."""
    if stage != "export":
        return {}
    run_id = cfg.get("export.select_run")
    if run_id:
        earlier = lh.get_run(run_id)
        if earlier["stage"] != "select" or earlier["output_version"] is None:
            raise ValueError(f"export.select_run {run_id} is not a finished select run")
        return {"selected": int(earlier["output_version"])}
    version = cfg.get("export.table_version")
    return {"selected": int(version)} if version is not None else {}


def _replay_inputs(cfg: Config, earlier: dict) -> Config:
    """Re-run on what an earlier run read: its pinned input versions, or for collect its dump choice."""
    import json

    if earlier["stage"] == "collect":
        old = json.loads(earlier["config_json"])["collection"]
        keys = ("source", "subsets", "max_samples", "revision")
        return cfg.with_overrides(f"collection.{k}={json.dumps(old[k])}" for k in keys)
    return cfg
