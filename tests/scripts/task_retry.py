"""Force a Spark task retry in the middle of model calls (master local[2,3]) and report what was stored.

Test-only: the library's task function is wrapped so that attempt 0 of every task dies after a quarter
of its requests were answered (and journaled); Spark retries the task, which must not ask those again,
and the driver must store each result once. Prints a JSON summary.
"""

import json
import sys
import time
from pathlib import Path

from pyspark import TaskContext


def main(warehouse: str, server_url: str) -> None:
    from mfr.config import load_config
    from mfr.lakehouse import Lakehouse
    from mfr.llm import task as call_task
    from mfr.llm.calls import call_models
    from mfr.llm.client import ClientSettings
    from mfr.runlog import RunLog
    from mfr.session import get_spark
    from mfr.stages.common import StageContext

    cfg = load_config(overrides=[f"lakehouse.warehouse={warehouse}", "spark.master=local[2,3]", "spark.shuffle_partitions=2"])
    spark = get_spark(cfg)
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    run = RunLog(lh).start("distill", cfg, {}, None)
    ctx = StageContext(spark, cfg, run, lh, {})
    original = call_task.task_fn

    marker = Path(warehouse) / "attempt-0-died"

    def dying_task_fn(*args, **kwargs):
        inner = original(*args, **kwargs)

        def run_(batches):
            if TaskContext.get().attemptNumber() > 0:
                yield from inner(batches)
                return

            def feed():
                sent = 0
                for b in batches:
                    for start in range(0, len(b), 50):
                        yield b.iloc[start:start + 50]
                        sent += 50
                        if sent >= 300:
                            time.sleep(1.0)  # what was sent comes back and reaches the journal
                            marker.write_text("1")
                            raise RuntimeError("injected executor failure mid-task")

            yield from inner(feed())

        return run_

    call_task.task_fn = dying_task_fn
    rows = [(f"k{i}", f"s:{i}", "cot", "m", "p@1", 0, json.dumps([{"role": "user", "content": "x <answer>"}]), "{}", None) for i in range(1200)]
    reqs = spark.createDataFrame(rows, "request_key string, sample_key string, purpose string, model string, prompt_version string, sample_index int, messages_json string, params_json string, image_id string")
    settings = ClientSettings((server_url,), "m", max_concurrency=16, timeout_s=5, backoff_base_s=0.01)
    stats = call_models(ctx.calls(), reqs, settings, "cot")
    calls = lh.read("llm_calls")
    summary = {
        "stored": calls.count(),
        "distinct_keys": calls.select("request_key").distinct().count(),
        "ok": calls.where("status = 'ok'").count(),
        "requested": stats.requested,
        "attempt_0_died": marker.exists(),
    }
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
