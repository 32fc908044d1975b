"""spark-submit entry point for the whole pipeline: `spark-submit jobs/all.py --config conf/local.yaml`."""

import sys
from pathlib import Path

try:
    from mfr.jobs import stage_main
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from mfr.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("all", sys.argv[1:]))
