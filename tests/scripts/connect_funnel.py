"""Run the whole pipeline through a Spark Connect session and print its funnel lines as JSON.

The client refuses session settings as Databricks serverless does (``tests/serverless_like.py``): the
settings mfr cannot make there are printed, with whether each stage's output version still names its run.
Used by tests/test_connect.py in a process of its own (a Connect client and the suite's classic session are
kept apart). Arguments: the Connect URL, the synthetic dump, a scratch folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mfr.config import load_config
from mfr.lakehouse import Lakehouse
from mfr.session import get_spark, is_connect
from tests.serverless_like import refuse_settings
from tests.test_golden_funnel import _funnel


def main() -> None:
    url, dump, scratch = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    cfg = load_config(overrides=[f"spark.remote={url}", f"collection.source={dump}", "lakehouse.schema=connect_golden",
                                 f"lakehouse.warehouse={scratch / 'client'}", f"llm.staging_dir={scratch / 'staging'}"])
    refused = refuse_settings()
    spark = get_spark(cfg)
    assert is_connect(spark), type(spark)
    lines = _funnel(spark, cfg, scratch)
    lh = Lakehouse(spark, cfg)
    named = {}  # stage -> whether its published version's commit carries the run (a writer option, no setting)
    for run in spark.table(lh.name("runs")).where("status = 'succeeded' AND output_table IS NOT NULL").collect():
        commit = lh.history(run["output_table"].split(".")[-1]).where(f"version = {run['output_version']}").collect()
        meta = commit[0]["userMetadata"] if commit else None
        named[run["stage"]] = bool(meta) and json.loads(meta).get("run_id") == run["run_id"]
    print(json.dumps({"lines": lines, "refused": sorted(set(refused)), "output_names_run": named}))
    spark.stop()


if __name__ == "__main__":
    main()
