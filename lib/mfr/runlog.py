"""The run log: one row per stage run in ``<schema>.runs`` (status, versions read and written, counts).

Time travel to a run is ``SELECT … FROM <schema>.<table> VERSION AS OF <output_version>``.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mfr.config import Config
from mfr.lakehouse import RUNS_SCHEMA, Lakehouse, Run, code_version, new_run_id, utc_now
from mfr.stages.registry import TABLES


class RunLog:
    def __init__(self, tables: Lakehouse):
        self.tables = tables

    def start(self, stage: str, cfg: Config, input_versions: dict[str, int], from_run: str | None) -> Run:
        self.tables.ensure_schema()
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
            "output_table": self.tables.name(TABLES[stage]) if stage in TABLES else None,
        }
        df = self.tables.spark.createDataFrame([tuple(row.get(f.name) for f in RUNS_SCHEMA.fields)], RUNS_SCHEMA)
        self.tables.append(df, "runs", run)
        return run

    def _update_run(self, run: Run, values: dict[str, Any]) -> None:
        row = self.tables.spark.range(1).select(
            F.lit(run.run_id).alias("run_id"),
            *[col.cast(RUNS_SCHEMA[name].dataType).alias(name) for name, col in values.items()],
        )
        self.tables.update_by_key("runs", row, "run_id", run)

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
    ) -> None:
        metric_map = F.create_map(
            *[x for k, v in sorted(metrics.items()) for x in (F.lit(k), F.lit(float(v)).cast("double"))]
        ) if metrics else F.lit(None).cast(RUNS_SCHEMA["metrics"].dataType)
        self._update_run(
            run,
            {
                "status": F.lit("succeeded"),
                "finished_at": F.lit(utc_now()).cast("timestamp"),
                "output_version": F.lit(output_version).cast("long"),
                "rows_in": F.lit(int(rows_in)).cast("long"),
                "rows_kept": F.lit(int(rows_kept)).cast("long"),
                "rows_rejected": F.lit(int(rows_rejected)).cast("long"),
                "rows_quarantined": F.lit(int(rows_quarantined)).cast("long"),
                "metrics": metric_map,
            },
        )

    def fail(self, run: Run, error: str) -> None:
        self._update_run(
            run,
            {
                "status": F.lit("failed"),
                "finished_at": F.lit(utc_now()).cast("timestamp"),
                "error": F.lit(error[:4000]),
            },
        )

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
