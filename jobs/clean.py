"""spark-submit entry point for the clean stage: `spark-submit jobs/clean.py --config conf/local.yaml [--set k=v]`."""

import _entry

if __name__ == "__main__":
    _entry.main("clean")
