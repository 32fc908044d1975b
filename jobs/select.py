"""spark-submit entry point for the select stage: `spark-submit jobs/select.py --config conf/local.yaml [--set k=v]`."""

import _entry

if __name__ == "__main__":
    _entry.main("select")
