"""Run the benchmarks and merge their figures into bench/results/latest.json.

`python -m bench.run [AREA ...]` (areas: collect, clean, decontam, llm, select, select_stage, fidelity, crash,
scale, incremental, regenerate). Each area measures its comparison side by side in the same run, on this machine, and reports ratios
next to the raw rates.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path

from mfr.config import load_config
from mfr.session import get_spark

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
WORKDIR = ROOT / "lakehouse" / "bench"


def _areas():
    from bench import (clean_bench, collect_bench, crash_bench, decontam_bench, fidelity_bench, incremental_bench, llm_bench,
                       scale_bench, select_bench)

    return {
        "collect": collect_bench.run,
        "clean": clean_bench.run,
        "decontam": decontam_bench.run,
        "llm": llm_bench.run,
        "select": select_bench.run,
        "select_stage": select_bench.run_stage_bench,
        "fidelity": fidelity_bench.run,
        "crash": crash_bench.run,
        "scale": scale_bench.run,
        "incremental": incremental_bench.run,
        "regenerate": incremental_bench.run_regenerate,
    }


OWN_DRIVERS = {"crash", "scale"}  # areas that start their own driver processes: no session here
LONG = OWN_DRIVERS | {"incremental"}  # asked for by name (incremental: ~4 pipelines over 100k rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("areas", nargs="*", help="areas to run (default: all)")
    parser.add_argument("--rows", type=int, default=None, help="override the area's row count")
    parser.add_argument("--trials", type=int, default=None, help="crash: kills per stage (default 5)")
    parser.add_argument("--stages", nargs="+", default=None, help="crash: kill only these stages (default all)")
    parser.add_argument("--marginal-rows", type=int, default=None,
                        help="collect: also collect this many rows in the same process and report the rate per added row")
    parser.add_argument("--real-copies", type=int, default=None,
                        help="collect: also collect this many copies of the real sample, ours and the seed's way")
    args = parser.parse_args(argv)
    areas = _areas()
    chosen = args.areas or [a for a in areas if a not in LONG]
    WORKDIR.mkdir(parents=True, exist_ok=True)
    warehouse = WORKDIR / "warehouse"
    base = [f"lakehouse.warehouse={warehouse}", "spark.master=local[2]", "spark.shuffle_partitions=4"]
    spark = None if set(chosen) <= OWN_DRIVERS else get_spark(load_config(overrides=base))

    def make_cfg(*overrides: str):
        return load_config(overrides=[*base, f"lakehouse.schema=bench_{uuid.uuid4().hex[:8]}", *overrides])

    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for name in chosen:
        start = time.perf_counter()
        kwargs = {"rows": args.rows} if args.rows else {}
        if args.trials and name == "crash":
            kwargs["trials"] = args.trials
        if args.stages and name == "crash":
            kwargs["stages"] = args.stages
        if args.marginal_rows and name == "collect":
            kwargs["marginal_rows"] = args.marginal_rows
        if args.real_copies and name == "collect":
            kwargs["real_copies"] = args.real_copies
        figures = areas[name](spark, make_cfg, WORKDIR, **kwargs)
        for k, v in figures.items():
            print(f"{k:40s} {v:12.4f}")
        results.update({k: round(float(v), 4) for k, v in figures.items()})
        print(f"({name}: {time.perf_counter() - start:.0f}s)", file=sys.stderr)
    # contract: every value is a number; the machine is printed, not stored
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
