"""Run a stage: record the run, compute, write one Delta version, check the accounting, finish the run."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mfr import incremental, reasons, writer_lock
from mfr.config import Config
from mfr.lakehouse import Lakehouse, Run, new_run_id
from mfr.runlog import RunLog, RunsSnapshot
from mfr.session import conf_value, executors_here, job_description
from mfr.stages import registry
from mfr.stages.common import StageContext
from mfr.storage import StorageError, is_local, shared_mount

log = logging.getLogger(__name__)


class AccountingError(RuntimeError):
    """rows_in != kept + rejected + quarantined: something was lost or invented."""


@dataclass(frozen=True)
class Outcomes:
    """What one run wrote, counted once: its output version's rows by (source, reject reason; None = kept)
    and its quarantined rows by (source, reason). The accounting check and the printed funnel read these."""

    written: dict[tuple[str | None, str | None], int] = field(default_factory=dict)
    quarantined: dict[tuple[str | None, str], int] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return sum(n for (_, reason), n in self.written.items() if reason is None)

    def rejected_by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_, reason), n in self.written.items():
            if reason is not None:
                out[reason] = out.get(reason, 0) + n
        return out

    @property
    def quarantined_rows(self) -> int:
        return sum(self.quarantined.values())


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
    outcomes: Outcomes
    mode: str = incremental.FULL  # the case that applied (mfr.incremental.Plan.line())
    wrote: bool = True  # a new version was committed (else output_version is the last run's)


def input_tables(stage: str, cfg: Config, log_: RunLog, snapshot: RunsSnapshot | None = None) -> list[str]:
    """Tables a stage reads (its registry entry says; it may ask what has been published)."""
    return registry.stage(stage).input_tables(cfg, lambda table: log_.published(table, snapshot))


def check_storage(stage: str, cfg: Config, lh: Lakehouse) -> None:
    """Every location the stage reads or writes outside its tables is reachable, before any table is
    written: a one-line StorageError naming the setting and the path otherwise."""
    s = cfg.settings
    st = lh.storage
    if s.lakehouse.location:
        st.check_writable(s.lakehouse.location, "lakehouse.location")
    # folders executors write or read beside the driver: journals and intermediates, and the stage's own
    # (the dump or its hub download, the export's files)
    outside = registry.stage(stage).outside_locations(cfg)
    shared = [(lh.staging_root, "llm.staging_dir" if s.llm.staging_dir else "staging folder")]
    shared += [(x.path, x.setting) for x in outside]
    check_executors_reach(lh.spark, cfg, shared)
    st.check_writable(lh.staging_root, shared[0][1])
    for x in outside:
        if x.check == "writable":
            st.check_writable(x.path, x.setting)
        elif x.check == "readable":
            st.check_readable(x.path, x.setting)


def check_executors_reach(spark: SparkSession, cfg: Config, folders: list[tuple[str, str]]) -> None:
    """A folder of this machine's disk is the executors' too only where they all run here (or
    ``spark.local_paths_shared`` says every node mounts it): elsewhere their journals and files would land
    on their own disks and the driver would never see them. One line naming the setting otherwise."""
    shared = cfg.settings.spark.local_paths_shared
    if shared is None:
        shared = executors_here(spark, cfg.settings.spark.remote)
    for path, setting in folders:
        if not shared and is_local(path) and not shared_mount(path):
            where = conf_value(spark, "spark.master") or cfg.settings.spark.remote or "a cluster"
            raise StorageError(
                f"{setting}: {path} is a folder of this machine's disk, which the executors ({where}) do not "
                "share: give a location every node reaches (s3://…, abfss://…, /Volumes/…; lakehouse.location "
                "puts the staging folder beside the tables), or set spark.local_paths_shared=true if every node "
                "mounts this path")


def run_stage(spark: SparkSession, cfg: Config, stage: str, from_run: str | None = None,
              full: bool = False) -> RunResult:
    """Run ``stage`` once and record it; ``full`` recomputes the whole stage even where the last run could be
    reused (``mfr.incremental``)."""
    lh = Lakehouse(spark, cfg)
    check_storage(stage, cfg, lh)
    run_id = new_run_id(stage)
    # where Delta cannot keep two drivers' commits apart, the whole run (table creation included) holds
    # the lakehouse's writer lock
    with writer_lock.lakehouse_held(lh, run_id) as lock:
        return _run(spark, cfg, stage, from_run, lh, run_id, lock, full)


def _plan(spec: registry.Stage, cfg: Config, lh: Lakehouse, log_: RunLog, snapshot: RunsSnapshot,
          inputs: dict[str, int], from_run: str | None, full: bool, run: Run) -> incremental.Plan:
    """Which case applies to this run (full, incremental or skip), from the stage's last succeeded run."""
    previous = snapshot.last_succeeded(spec.name)
    why = incremental.why_full(spec, cfg, previous, inputs, from_run, full)
    if why is None and previous is not None:
        why = incremental.table_moved(lh, spec.table, previous, log_.published(spec.table, snapshot))
    if why is not None or previous is None:
        return incremental.Plan(incremental.FULL, why or "")
    same_inputs = {k: int(v) for k, v in (previous.get("input_versions") or {}).items()} == inputs
    if spec.incremental == "whole":  # the stage itself checks that what it wrote outside its table is still there
        if same_inputs:
            return incremental.Plan(incremental.INCREMENTAL, f"inputs unchanged since run {previous['run_id']}", previous)
        return incremental.Plan(incremental.FULL, f"inputs changed since run {previous['run_id']}")
    if spec.incremental == "files":
        return incremental.Plan(incremental.INCREMENTAL, f"dump files compared with run {previous['run_id']}'s", previous)
    stale, counts = incremental.stale_rows(lh, spec, cfg, previous, inputs, run)
    if not counts["rows_processed"] and not counts["rows_removed"]:
        return incremental.Plan(incremental.SKIP, f"no input row changed since run {previous['run_id']}", previous,
                                stale, counts)
    return incremental.Plan(incremental.INCREMENTAL, f"{counts['rows_processed']} row(s) computed, "
                            f"{counts['rows_removed']} removed, the others carried from run {previous['run_id']}",
                            previous, stale, counts)


def _run(spark: SparkSession, cfg: Config, stage: str, from_run: str | None, lh: Lakehouse, run_id: str,
         lock: writer_lock.WriterLock | None, full: bool = False) -> RunResult:
    spec = registry.stage(stage)
    lh.ensure_schema()
    log_ = RunLog(lh)
    snapshot = log_.snapshot()  # the run log read once for pinning, abandoning and sweeping
    cfg, inputs = _pin_inputs(stage, cfg, lh, log_, from_run, snapshot)
    run = log_.start(stage, cfg, inputs, from_run, snapshot, run_id=run_id)
    swept = lh.sweep_intermediates(snapshot.ended() | log_.abandoned)
    if swept:
        log.info("removed intermediates of %d ended run(s): %s", len(swept), ", ".join(swept))
    timings: dict[str, float] = {}
    version: int | None = None
    wrote = False  # this run committed a version of its table (a failed run's is unpublished)

    @contextmanager
    def timed(phase: str) -> Iterator[None]:
        start = time.perf_counter()
        with job_description(spark, f"mfr {stage}: {phase}"):
            yield
        timings[f"time_s.{phase}"] = time.perf_counter() - start

    table = spec.table
    plan = incremental.Plan(incremental.FULL, "")
    try:
        with timed("plan"):
            plan = _plan(spec, cfg, lh, log_, snapshot, inputs, from_run, full, run)
        out = None
        if plan.mode != incremental.SKIP:
            with timed("compute"):
                out = spec.fn(StageContext(spark, cfg, run, lh, inputs, plan))
        if out is None or out.nothing_new:
            version = plan.previous_version
            assert version is not None  # a skipped run has a last one
            outcomes = _count_outcomes(stage, lh, table, version, run, False)
            rows_in = outcomes.kept + sum(outcomes.rejected_by_reason().values())
            stage_metrics = dict(out.metrics) if out is not None else {}
            stage_metrics.setdefault("incremental.rows_processed", 0.0)
            plan.mode = incremental.SKIP
            after_write = None
        else:
            if out.images is not None:
                with timed("images"):
                    stored = lh.add_images(out.images, run, out.image_origin)
                if stored >= 0:  # images new to the lakehouse (the others were stored by an earlier run)
                    out.metrics["images_stored"] = float(stored)
            with timed("write"):
                if plan.mode == incremental.INCREMENTAL and spec.incremental in ("rows", "files"):  # keyed rows
                    merged = lh.merge_stage_output(out.rows, table, run, candidates=out.candidates)
                    wrote = merged is not None
                    version = merged if merged is not None else plan.previous_version
                else:
                    version = lh.write_stage_output(out.rows, table, run)
                    wrote = True
            assert version is not None
            if out.quarantine is not None:
                with timed("quarantine"):
                    lh.quarantine(out.quarantine, run)
            outcomes = _count_outcomes(stage, lh, table, version, run, out.quarantine is not None)
            rows_in, stage_metrics, after_write = out.rows_in, dict(out.metrics), out.after_write
            processed = plan.counts.get("rows_processed") if plan.mode == incremental.INCREMENTAL else rows_in
            stage_metrics.setdefault("incremental.rows_processed", float(processed if processed is not None else rows_in))
        for name in ("rows_removed", "rows_retried", "input_from_change_feed"):
            if name in plan.counts:
                stage_metrics[f"incremental.{name}"] = float(plan.counts[name])
        kept, by_reason, quarantined = outcomes.kept, outcomes.rejected_by_reason(), outcomes.quarantined_rows
        rejected = sum(by_reason.values())
        metrics = {**stage_metrics, **timings, **{f"rejected.{k}": float(v) for k, v in by_reason.items()}}
        if rows_in != kept + rejected + quarantined:
            raise AccountingError(
                f"{stage}: rows_in {rows_in} != kept {kept} + rejected {rejected} + quarantined {quarantined}"
            )
        if after_write is not None:  # views and derived figures only for an output that passed its checks
            metrics.update(after_write(spark, lh, version))
        metrics = {k: float(v) for k, v in metrics.items()}  # plain numbers, as rows_in (StageOutput)
        if lock is not None:
            lock.check()
        log_.finish(
            run,
            output_version=version,
            rows_in=rows_in,
            rows_kept=kept,
            rows_rejected=rejected,
            rows_quarantined=quarantined,
            metrics=metrics,
            mode=plan.line(),
        )
    except BaseException as exc:
        log_.fail(run, f"{type(exc).__name__}: {exc}", mode=plan.line())
        if wrote and version is not None:
            _unpublish(lh, log_, spec.table, version)
        raise
    finally:
        lh.drop_intermediates(run.run_id)
    return RunResult(run.run_id, stage, lh.name(table), version, rows_in, kept, rejected, quarantined, metrics,
                     outcomes, plan.line(), wrote)


def _pin_inputs(stage: str, cfg: Config, lh: Lakehouse, log_: RunLog, from_run: str | None,
                snapshot: RunsSnapshot) -> tuple[Config, dict[str, int]]:
    """The input versions the run reads (an earlier run's with --from-run, a chosen one, else the current)."""
    spec = registry.stage(stage)
    if from_run:
        earlier = log_.get(from_run)
        if earlier["stage"] != stage:
            raise ValueError(f"run {from_run} is a {earlier['stage']} run, not {stage}")
        cfg = spec.replay_config(cfg, earlier)
        pinned = dict(earlier["input_versions"] or {})
    else:
        pinned = spec.chosen_versions(cfg, lh)
    inputs = {}
    for table in input_tables(stage, cfg, log_, snapshot):
        version = pinned.get(table)
        if version is None:
            version = log_.published(table, snapshot)
        if version is None:
            raise ValueError(f"stage '{stage}' reads {lh.name(table)}, which no finished run has written yet: run its stage first")
        inputs[table] = int(version)
    return cfg, inputs


def _unpublish(lh: Lakehouse, log_: RunLog, table: str, written: int) -> None:
    """After a failed run wrote ``table``: put the last published content back as the current version, so
    a plain ``SELECT`` shows what readers pin (best effort: the failed version stays in the history)."""
    published = log_.published(table)
    try:
        if published is None or lh.current_version(table) != written:
            return
        lh.restore(table, published)
        log.warning("%s: the failed run's version %d is not published; current content restored from version %d",
                    lh.name(table), written, published)
    except Exception as exc:
        log.warning("%s: could not restore version %s after a failed run: %s", lh.name(table), published, exc)


def _count_outcomes(stage: str, lh: Lakehouse, table: str, version: int, run: Run, quarantines: bool) -> Outcomes:
    """The written version's rows and the run's quarantine, counted by source and reason (one aggregation
    each); unregistered codes fail the run."""
    written = lh.read(table, version)
    keys = [F.col("source") if "source" in written.columns else F.lit(None).cast("string").alias("source"),
            F.col("reject_reason")]
    counted = {(r["source"], r["reject_reason"]): int(r["count"]) for r in written.groupBy(*keys).count().collect()}
    outcomes = Outcomes(counted, lh.quarantined_by_source(run) if quarantines else {})
    _check_reasons(stage, {reason for _, reason in outcomes.written}, {reason for _, reason in outcomes.quarantined})
    return outcomes


class UnregisteredReason(RuntimeError):
    """A stage wrote a reason code that mfr.reasons does not list for it."""


def _check_reasons(stage: str, found: set[str | None], quarantined: set[str]) -> None:
    bad = reasons.unregistered(stage, found)
    bad += [f"{c} (quarantine)" for c in reasons.unregistered(stage, quarantined, quarantine=True)]
    if bad:
        raise UnregisteredReason(f"{stage} wrote reason codes not registered in mfr.reasons: {', '.join(bad)}")
