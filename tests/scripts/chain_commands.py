"""Back-to-back commands, as a user's shell script chains them (by hand: it takes about a minute a round).

    python -m tests.scripts.chain_commands --rounds 20 [--mfr PATH]

Each round runs `mfr run --stage collect` and, the moment it returns, `mfr sql --json` on the same embedded
lakehouse; every command must exit 0 (never "another mfr command holds the embedded metastore"). Prints each
command's wall time and a JSON summary. CI runs the two-command chain once (tests/test_cli.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--mfr", default=str(Path(sys.executable).parent / "mfr"))
    args = parser.parse_args(argv)
    from mfr.sample.synthetic import write_sample

    work = Path(tempfile.mkdtemp(prefix="mfr-chain-"))
    write_sample(work / "dump", 12)
    sets = ["--set", f"lakehouse.warehouse={work / 'lh'}", "--set", f"collection.source={work / 'dump'}",
            "--set", "spark.master=local[1]"]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    times, failures = [], []
    for i in range(args.rounds):
        for argv_ in (["run", "--stage", "collect"], ["sql", "--json", "SELECT count(*) AS n FROM mfr.collected"]):
            start = time.monotonic()
            out = subprocess.run([args.mfr, *argv_, *sets], cwd=work, env=env, capture_output=True, text=True)
            took = time.monotonic() - start
            times.append(took)
            print(f"round {i + 1} {argv_[0]}: exit {out.returncode} in {took:.1f} s", flush=True)
            if out.returncode != 0:
                failures.append({"round": i + 1, "command": argv_[0], "stderr": out.stderr.strip().splitlines()[-1:]})
    print(json.dumps({"rounds": args.rounds, "commands": len(times), "failures": failures,
                      "mean_s": round(sum(times) / len(times), 1), "work": str(work)}))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
