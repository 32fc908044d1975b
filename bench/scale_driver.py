"""One driver of the scale bench: run every stage in order on one config and print the seconds of each.

`python -m bench.scale_driver CONFIG` prints ``TIMES {"schema": s, "collect": s, ...}`` (the lakehouse's tables
created first, then each stage's whole run, its bookkeeping included), ``ROWS {...}`` (rows in per stage) and
``PEAKS {stage: [python MB, JVM MB]}`` (the driver's peak resident memory during each stage, sampled every
0.2 s: which stage, and which side of the driver, holds memory) and ``PEAK bytes`` (the whole run's peak of
both together).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import psutil

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.session import get_spark
from mfr.stages.registry import NAMES


def driver_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of a driver: its Python process and the JVM it started (executor JVMs are that JVM's
    children and are not counted); (0, 0) once it is gone."""
    try:
        proc = psutil.Process(pid)
        jvms = [c for c in proc.children(recursive=True)
                if "java" in c.name() and "org.apache.spark.deploy.SparkSubmit" in " ".join(c.cmdline())]
        return proc.memory_info().rss, sum(j.memory_info().rss for j in jvms)
    except psutil.Error:
        return 0, 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = load_config(args[0])
    spark = get_spark(cfg)
    peaks: dict[str, list[float]] = {}
    whole = [0]  # the run's peak of Python and JVM together
    current = ["schema"]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            python, jvm = driver_rss(os.getpid())
            whole[0] = max(whole[0], python + jvm)
            top = peaks.setdefault(current[0], [0.0, 0.0])
            peaks[current[0]] = [max(top[0], python / 2**20), max(top[1], jvm / 2**20)]

    threading.Thread(target=sample, daemon=True).start()
    start = time.perf_counter()
    Lakehouse(spark, cfg).ensure_schema()  # once per lakehouse, not per row: timed on its own
    times, rows = {"schema": time.perf_counter() - start}, {}
    for stage in NAMES:
        current[0] = stage
        start = time.perf_counter()
        result = run_stage(spark, cfg, stage)
        times[stage] = time.perf_counter() - start
        rows[stage] = result.rows_in
    done.set()
    print("TIMES " + json.dumps(times), flush=True)
    print("ROWS " + json.dumps(rows), flush=True)
    print("PEAKS " + json.dumps(peaks), flush=True)
    print("PEAK " + json.dumps(whole[0]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
