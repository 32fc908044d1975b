"""Distill through a Spark Connect session with a test teacher: the model-call path (one call job, results
stored by a driver thread while calls continue) on Connect. Prints a JSON summary.

Used by tests/test_connect.py in a process of its own, on the lakehouse the Connect golden funnel left (its
collected and cleaned tables are the input). Arguments: the Connect URL, the schema, the funnel's scratch
folder, the teacher's URL.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pyspark.sql import functions as F

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.session import get_spark, is_connect


def main() -> None:
    url, schema, scratch, teacher = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    sets = [f"spark.remote={url}", f"lakehouse.schema={schema}",
            f"lakehouse.warehouse={scratch / 'client'}", f"llm.staging_dir={scratch / 'staging'}",
            "llm.shard_size=20", "distillation.overwrite=true"]
    sets += [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
             for k, v in (("api_base", teacher), ("model", f"{p}-model"), ("backoff_base_s", 0.01),
                          ("max_concurrency", 2))]  # ~40 calls/s in all: the call job lasts a few seconds
    cfg = load_config(overrides=sets)
    spark = get_spark(cfg)
    assert is_connect(spark), type(spark)
    lh = Lakehouse(spark, cfg)
    before = lh.read("llm_calls").count()
    result = run_stage(spark, cfg, "distill")
    calls = lh.read("llm_calls")
    ok = calls.where(F.col("status") == "ok")
    history = spark.sql(f"DESCRIBE HISTORY {lh.name('llm_calls')}").where(F.col("operation") == "WRITE").count()
    distilled = lh.read("distilled", result.output_version)
    counts = {  # int(): Spark 3.5's Connect client counts in numpy integers
        "ok": ok.count(), "distinct_ok": ok.select("request_key").distinct().count(),
        "commits": history, "pending": distilled.where(F.col("reject_reason") == "pending_model").count(),
        "distilled_cot": distilled.where(F.col("cot_origin") == "distilled").count(),
    }
    counts["calls_before"] = before  # none: the funnel ran without endpoints
    print(json.dumps({**{k: int(v) for k, v in counts.items()}, "rows_in": result.rows_in, "kept": result.rows_kept}))
    spark.stop()


if __name__ == "__main__":
    main()
