"""spark-submit entry point for the export stage: `spark-submit jobs/export.py --config conf/local.yaml [--set k=v]`."""

import os
import sys

# Python puts this folder first on sys.path; jobs/select.py would then shadow the standard library's
# `select` module (used by subprocess and sockets). Take the folder off the path before anything else.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

try:
    from mfr.jobs import stage_main
except ImportError:  # a checkout without the package installed
    sys.path.insert(0, os.path.join(os.path.dirname(_here), "lib"))
    from mfr.jobs import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("export", sys.argv[1:]))
