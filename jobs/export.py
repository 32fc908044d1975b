"""spark-submit entry point for export: `spark-submit jobs/export.py --config FILE [--set k=v ...]`."""

import sys

del sys.path[0]  # this folder: jobs/select.py would shadow the standard library's select module
from mfr.jobs import main  # noqa: E402

main("export")
