"""spark-submit entry point for the distill stage: `spark-submit jobs/distill.py --config conf/local.yaml [--set k=v]`."""

import _entry

if __name__ == "__main__":
    _entry.main("distill")
