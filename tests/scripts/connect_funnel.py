"""Run the whole pipeline through a Spark Connect session and print its funnel lines as JSON.

Used by tests/test_connect.py in a process of its own (a Connect client and the suite's classic session are
kept apart). Arguments: the Connect URL, the synthetic dump, a scratch folder.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mfr.config import load_config
from mfr.session import get_spark, is_connect
from tests.test_golden_funnel import _funnel


def main() -> None:
    url, dump, scratch = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    cfg = load_config(overrides=[f"spark.remote={url}", f"collection.source={dump}", "lakehouse.schema=connect_golden",
                                 f"lakehouse.warehouse={scratch / 'client'}", f"llm.staging_dir={scratch / 'staging'}"])
    spark = get_spark(cfg)
    assert is_connect(spark), type(spark)
    lines = _funnel(spark, cfg, scratch)
    print(json.dumps({"lines": lines}))
    spark.stop()


if __name__ == "__main__":
    main()
