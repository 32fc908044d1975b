"""spark-submit entry point for the export stage: `spark-submit jobs/export.py --config conf/local.yaml [--set k=v]`."""

import _entry

if __name__ == "__main__":
    _entry.main("export")
