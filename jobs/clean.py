"""spark-submit entry point for clean: `spark-submit jobs/clean.py --config FILE [--set k=v ...]`."""

import sys

del sys.path[0]  # this folder: jobs/select.py would shadow the standard library's select module
from mfr.jobs import main  # noqa: E402

main("clean")
