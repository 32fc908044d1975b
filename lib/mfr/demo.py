"""`make demo`: the whole pipeline on a synthetic dump, on the embedded default (local Spark + Delta)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mfr.cli import default_config_path
from mfr.config import load_config
from mfr.pipeline import run_pipeline
from mfr.printing import format_table
from mfr.sample.synthetic import write_sample
from mfr.session import get_spark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=240, help="synthetic rows (default 240)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args(argv)

    cfg = load_config(default_config_path(), args.overrides)
    dump = Path(cfg.settings.lakehouse.warehouse) / "sample-dump"
    counts = write_sample(dump, args.rows)
    print(f"synthetic dump: {sum(counts.values())} rows in {dump}")
    # the demo owns its export folder (rewritten on every run) and shows an RL split of 20 rows
    warehouse = Path(cfg.settings.lakehouse.warehouse)
    export_dir = (warehouse / "export").resolve()
    cfg = cfg.with_overrides([f"collection.source={dump}", f"export.out={export_dir}",
                              "export.overwrite=true", "export.rl.rows=20"])
    spark = get_spark(cfg)
    results = run_pipeline(cfg, None, out=sys.stdout, spark=spark)
    print("\nTable versions written by this demo:")
    print(format_table(["stage", "run_id", "table", "version"], [(r.stage, r.run_id, r.output_table, r.output_version) for r in results]))
    schema = cfg.settings.lakehouse.schema
    from mfr.report import write_report

    page = write_report(spark, cfg)
    print(
        f"\nLLaMA-Factory export: {export_dir / 'llamafactory'} (dataset mfr_sft; recipe mfr_8b.yaml)"
        f"\nHF dataset export:    {export_dir / 'hf'}"
        f"\nReport:               {os.path.abspath(page)}"
    )
    print(
        "\nTry:\n"
        "  .venv/bin/mfr history\n"
        f"  .venv/bin/mfr sql \"SELECT source, count(*) AS n FROM {schema}.collected GROUP BY source\"\n"
        f"  .venv/bin/mfr sql --json \"SELECT count(*) AS n FROM {schema}.collected VERSION AS OF 0\"\n"
        f"  .venv/bin/mfr sql \"SELECT stage, reason, sample_key FROM {schema}.quarantine\""
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
