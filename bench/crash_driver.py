"""One driver of the kill-anywhere trials: run a stage (or nothing) and print the lakehouse's state as JSON.

`python -m bench.crash_driver CONFIG STAGE|- [--set k=v ...]`. The state printed after the run is what a
trial compares with the uninterrupted run: (sample_key, reject_reason) of every stage table, duplicates,
requests with two stored successes, runs left ``running``, and the accounting of the stage's last run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from pyspark.sql import functions as F

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage
from mfr.session import get_spark
from mfr.stages.registry import NAMES, TABLES


def state(lh: Lakehouse) -> dict:
    runs = RunLog(lh)
    out: dict = {"tables": {}, "duplicate_keys": 0}
    for stage in NAMES:
        version = runs.published(TABLES[stage])
        if version is None:
            continue
        df = lh.read(TABLES[stage], version)
        rows = sorted((r["sample_key"], r["reject_reason"] or "") for r in df.select("sample_key", "reject_reason").collect())
        out["tables"][stage] = {"rows": len(rows), "sha256": hashlib.sha256(json.dumps(rows).encode()).hexdigest()}
        out["duplicate_keys"] += len(rows) - len({k for k, _ in rows})
    ok = lh.read("llm_calls").where(F.col("status") == "ok")
    out["double_successes"] = ok.count() - ok.select("request_key").distinct().count()
    out["running"] = runs.list().where(F.col("status") == "running").count()
    last = {r["stage"]: r for r in runs.list().where(F.col("status") == "succeeded").collect()}
    out["accounting_ok"] = all(
        r["rows_in"] == r["rows_kept"] + r["rows_rejected"] + r["rows_quarantined"] for r in last.values()
    )
    out["abandoned"] = runs.list().where(F.col("status") == "abandoned").count()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("stage")
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args(argv)
    cfg = load_config(args.config, args.set)
    spark = get_spark(cfg)
    if args.stage != "-":
        run_stage(spark, cfg, args.stage)
        print("STAGE-DONE", flush=True)
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    print("STATE " + json.dumps(state(lh), sort_keys=True), flush=True)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
