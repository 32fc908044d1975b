"""spark-submit entry point for the whole pipeline: `spark-submit jobs/all.py --config FILE [--set k=v ...]`."""

import sys

del sys.path[0]  # this folder: jobs/select.py would shadow the standard library's select module
from mfr.jobs import main  # noqa: E402

main("all")
