"""On a real cluster master (a standalone Spark master and worker on this machine, started by
tests/test_cluster_paths.py): what mfr does with folders of the driver's disk. Prints a JSON summary.

The cluster's default filesystem is set to one that does not exist here, as EMR's is HDFS and Databricks'
is DBFS: a bare path handed to Spark would go there. Arguments: the master URL, a scratch folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.runner import check_storage
from mfr.session import executors_here, get_spark
from mfr.storage import StorageError


def main() -> None:
    master, scratch = sys.argv[1], Path(sys.argv[2])
    sets = [f"spark.master={master}", f"lakehouse.warehouse={scratch / 'lakehouse'}",
            'spark.conf={"spark.hadoop.fs.defaultFS": "elsewhere://cluster-default/"}']
    cfg = load_config(overrides=sets)
    spark = get_spark(cfg)
    out: dict[str, object] = {"master": spark.conf.get("spark.master"), "executors_here": executors_here(spark)}
    try:  # the default staging folder is under the local warehouse
        check_storage("distill", cfg, Lakehouse(spark, cfg))
        out["refused"] = None
    except StorageError as exc:
        out["refused"] = str(exc)
    shared = cfg.with_overrides(["spark.local_paths_shared=true"])  # the folder is the workers' too: same machine
    lh = Lakehouse(spark, shared)
    check_storage("distill", shared, lh)
    staged = lh.stage(spark.range(1000).selectExpr("id", "id * 2 AS twice"), "r1", "numbers")
    out["staged_rows"] = staged.count()
    out["staged_sum"] = staged.groupBy().sum("twice").collect()[0][0]
    out["files_here"] = len(list(Path(lh.staging_root, "intermediate", "r1", "numbers").glob("*.parquet")))
    print(json.dumps(out))
    spark.stop()


if __name__ == "__main__":
    main()
