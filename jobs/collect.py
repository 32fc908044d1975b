"""spark-submit entry point for the collect stage: `spark-submit jobs/collect.py --config conf/local.yaml [--set k=v]`."""

import _entry

if __name__ == "__main__":
    _entry.main("collect")
