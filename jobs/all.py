"""spark-submit entry point for the whole pipeline: `spark-submit jobs/all.py --config conf/local.yaml`."""

import _entry

if __name__ == "__main__":
    _entry.main("all")
