"""One driver of the scale bench: run every stage in order on one config and print the seconds of each.

`python -m bench.scale_driver CONFIG` prints ``TIMES {"schema": s, "collect": s, ...}`` (the lakehouse's tables
created first, then each stage's whole run, its bookkeeping included) and ``ROWS {...}`` (rows in per stage).
"""

from __future__ import annotations

import json
import sys
import time

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.session import get_spark
from mfr.stages.registry import NAMES


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = load_config(args[0])
    spark = get_spark(cfg)
    start = time.perf_counter()
    Lakehouse(spark, cfg).ensure_schema()  # once per lakehouse, not per row: timed on its own
    times, rows = {"schema": time.perf_counter() - start}, {}
    for stage in NAMES:
        start = time.perf_counter()
        result = run_stage(spark, cfg, stage)
        times[stage] = time.perf_counter() - start
        rows[stage] = result.rows_in
    print("TIMES " + json.dumps(times), flush=True)
    print("ROWS " + json.dumps(rows), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
