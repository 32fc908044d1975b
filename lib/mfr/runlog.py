"""The run log: one row per stage run in ``<schema>.runs`` (status, versions read and written, counts).

Time travel to a run is ``SELECT … FROM <schema>.<table> VERSION AS OF <output_version>``.

Publication: a stage's output becomes an input only through ``published()``, the output version of the
last *succeeded* run that wrote the table, never the table's current version, so a version written by a
run that then failed its checks, or whose driver was killed, is never read by the next stage.

Liveness (``mfr.liveness``): a running stage's driver keeps a lease object (``<staging>/leases/<run_id>.json``)
fresh. At the next start, a ``running`` row whose lease is stale (or whose process is gone on this host) is marked
``abandoned``. A stage is held by one run at a time: the ``running`` row is inserted by a ``MERGE`` that
only inserts when no other run of the stage is running; Delta's conflict check makes two concurrent
claims serialize, and the loser is told which run holds the stage.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import time
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mfr.config import Config
from mfr.lakehouse import RUNS_SCHEMA, Lakehouse, Run, code_version, new_run_id, utc_now
from mfr.liveness import Lease, driver_gone, lease_path
from mfr.stages.registry import TABLES

log = logging.getLogger(__name__)


class StageBusy(RuntimeError):
    """Another run of the same stage is running on this lakehouse."""


@dataclass(frozen=True)
class RunsSnapshot:
    """The run log read once (one row per run: small), for the questions a stage asks as it starts."""

    rows: tuple[dict[str, Any], ...]

    def published(self, output_table: str) -> int | None:
        """The output version of the last succeeded run that wrote ``output_table`` (a qualified name)."""
        done = [r for r in self.rows if r["output_table"] == output_table and r["status"] == "succeeded"
                and r["output_version"] is not None]
        if not done:
            return None
        last = max(done, key=lambda r: (r["finished_at"] or dt.datetime.min, r["output_version"]))
        return int(last["output_version"])

    def last_succeeded(self, stage: str) -> dict[str, Any] | None:
        """The row of ``stage``'s last succeeded run (a stage's own, not a publish), None when none."""
        done = [r for r in self.rows if r["stage"] == stage and r["status"] == "succeeded"]
        if not done:
            return None
        return max(done, key=lambda r: (r["finished_at"] or dt.datetime.min, r["output_version"] or -1))

    def running(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["status"] == "running"]

    def ended(self) -> set[str]:
        return {r["run_id"] for r in self.rows if r["status"] != "running"}


class RunLog:
    def __init__(self, tables: Lakehouse):
        self.tables = tables
        self._leases: dict[str, Lease] = {}
        self.abandoned: set[str] = set()  # runs this log marked abandoned

    def snapshot(self) -> RunsSnapshot:
        self.tables.ensure_schema()
        cols = ("run_id", "stage", "status", "started_at", "finished_at", "output_table", "output_version",
                "config_json", "code_version", "input_versions", "metrics")  # these four: may a run be incremental
        return RunsSnapshot(tuple(r.asDict(recursive=True) for r in self.tables.read("runs").select(*cols).collect()))

    def start(self, stage: str, cfg: Config, input_versions: dict[str, int], from_run: str | None,
              snapshot: RunsSnapshot | None = None, run_id: str | None = None) -> Run:
        """Record a new ``running`` run of ``stage`` (after marking dead drivers' runs abandoned) and start
        its lease; StageBusy when another live run holds the stage."""
        self.tables.ensure_schema()
        self.abandon_dead(snapshot)
        run = Run(run_id or new_run_id(stage), stage, cfg, dict(input_versions), from_run)
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
            "output_table": self.tables.name(TABLES[stage]) if stage in TABLES else None,
        }
        df = self.tables.spark.createDataFrame([tuple(row.get(f.name) for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA)
        self._claim(df, run)
        self._leases[run.run_id] = Lease(self.tables.storage, self.tables.staging_root, run.run_id,
                                       float(cfg.settings.runs.heartbeat_s)).start()
        return run

    def _claim(self, row: DataFrame, run: Run) -> None:
        """Insert the running row unless another run of the stage is running (one MERGE: Delta serializes
        two concurrent claims, the second sees the first or fails its commit and tries again)."""
        inserted = self.tables.insert_unless("runs", row, "t.stage = s.stage AND t.status = 'running'", run)
        if inserted < 0:  # no MERGE metrics from this Delta: look
            inserted = self.tables.read("runs").where(F.col("run_id") == run.run_id).count()
        if not inserted:
            holder = self.tables.read("runs").where((F.col("stage") == run.stage) & (F.col("status") == "running"))
            held = [r["run_id"] for r in holder.select("run_id").collect()]
            raise StageBusy(f"stage {run.stage} is held by run {', '.join(held) or '?'} (still running on "
                            f"{self.tables.namespace}); wait for it, or if its driver is gone it is marked abandoned "
                            f"after runs.abandon_after_s")

    def abandon_dead(self, snapshot: RunsSnapshot | None = None) -> list[str]:
        """Mark ``running`` runs whose driver is gone as ``abandoned``; returns their ids."""
        running = (snapshot or self.snapshot()).running()
        now, host = time.time(), socket.gethostname()
        limit = float(self.tables.cfg.settings.runs.abandon_after_s)
        gone = []
        for r in running:
            if r["run_id"] in self._leases:
                continue
            try:
                lease = json.loads(self.tables.storage.read_text(lease_path(self.tables.staging_root, r["run_id"])))
            except FileNotFoundError:
                lease = None
            started = r["started_at"].replace(tzinfo=dt.timezone.utc).timestamp() if r["started_at"] else 0.0
            why = driver_gone(lease, started, now, limit, host)
            if why:
                self._set(r["run_id"], {"status": "abandoned", "finished_at": utc_now(), "error": f"abandoned: {why}"})
                self.tables.storage.delete(lease_path(self.tables.staging_root, r["run_id"]))
                log.warning("run %s marked abandoned (%s)", r["run_id"], why)
                gone.append(r["run_id"])
        self.abandoned.update(gone)
        return gone

    def live_run_ids(self) -> set[str]:
        return {r["run_id"] for r in self.snapshot().running()}

    def published(self, table: str, snapshot: RunsSnapshot | None = None) -> int | None:
        """The output version of ``table`` from the last succeeded run that wrote it (None when none has)."""
        return (snapshot or self.snapshot()).published(self.tables.name(table))

    def publish(self, table: str, cfg: Config, kind: str = "publish", restored_from: int | None = None,
                run_id: str | None = None) -> Run:
        """Make the table's current version the input of the next stage: a change made outside a stage run
        (a RESTORE, a hand correction with SQL ``UPDATE``) is recorded as a succeeded run of kind ``kind``.
        Without it, the next stage keeps reading the last stage run's output."""
        version = self.tables.current_version(table)
        if version is None:
            raise KeyError(f"no table {self.tables.name(table)}")
        inputs = {table: int(restored_from)} if restored_from is not None else {}
        run = Run(run_id or new_run_id(kind), kind, cfg, inputs)
        row = {
            "run_id": run.run_id, "stage": kind, "status": "succeeded", "started_at": run.started_at,
            "finished_at": utc_now(), "config_hash": cfg.hash, "code_version": code_version(),
            "input_versions": inputs, "output_table": self.tables.name(table), "output_version": int(version),
        }
        df = self.tables.spark.createDataFrame([tuple(row.get(f.name) for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA)
        self.tables.append(df, "runs", run)
        return run

    def _update_run(self, run: Run, values: dict[str, Any]) -> None:
        self._set(run.run_id, values, run)
        lease = self._leases.pop(run.run_id, None)
        if lease is not None:
            lease.stop()

    def _set(self, run_id: str, values: dict[str, Any], run: Run | None = None) -> None:
        self.tables.update_row("runs", "run_id", run_id, values, run)

    def finish(
        self,
        run: Run,
        *,
        output_version: int | None,
        rows_in: int,
        rows_kept: int,
        rows_rejected: int,
        rows_quarantined: int,
        metrics: dict[str, float],
        mode: str | None = None,
    ) -> None:
        self._update_run(
            run,
            {
                "status": "succeeded",
                "mode": mode,
                "finished_at": utc_now(),
                "output_version": output_version,
                "rows_in": int(rows_in),
                "rows_kept": int(rows_kept),
                "rows_rejected": int(rows_rejected),
                "rows_quarantined": int(rows_quarantined),
                "metrics": {k: float(v) for k, v in sorted(metrics.items())} or None,
            },
        )

    def fail(self, run: Run, error: str, mode: str | None = None) -> None:
        self._update_run(run, {"status": "failed", "finished_at": utc_now(), "error": error[:4000], "mode": mode})

    def list(self, stage: str | None = None) -> DataFrame:
        self.tables.ensure_schema()
        df = self.tables.read("runs")
        if stage:
            df = df.where(F.col("stage") == stage)
        return df.orderBy("started_at")

    def get(self, run_id: str) -> dict[str, Any]:
        self.tables.ensure_schema()
        rows = self.tables.read("runs").where(F.col("run_id") == run_id).collect()
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.tables.name('runs')}")
        return rows[0].asDict(recursive=True)

    def last_succeeded(self, stage: str) -> dict[str, Any] | None:
        rows = (
            self.list(stage).where(F.col("status") == "succeeded").orderBy(F.col("started_at").desc()).limit(1).collect()
        )
        return rows[0].asDict(recursive=True) if rows else None
