"""Run several SQL queries in one session (one JVM) and print their rows as one JSON list (test helper)."""

import json
import sys


def main(config: str, *queries: str) -> None:
    from mfr.config import load_config
    from mfr.printing import rows_as_json
    from mfr.session import get_spark

    spark = get_spark(load_config(config))
    out = [json.loads(rows_as_json(spark.sql(q).collect())) for q in queries]
    print("RESULTS " + json.dumps(out), flush=True)
    spark.stop()


if __name__ == "__main__":
    main(*sys.argv[1:])
