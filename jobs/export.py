"""spark-submit entry point for the export stage: `spark-submit jobs/export.py --config conf/local.yaml [--set k=v]`."""

import sys
from pathlib import Path

try:
    from mfr.jobs import stage_main
except ImportError:  # run from a checkout without the package installed (e.g. --py-files elsewhere)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
    from mfr.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("export", sys.argv[1:]))
