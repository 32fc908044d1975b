"""`make demo`: the whole pipeline on a synthetic dump, on the embedded default (local Spark + Delta)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from mfr.cli import default_config_path
from mfr.config import load_config
from mfr.pipeline import run_pipeline
from mfr.printing import format_table
from mfr.sample.synthetic import write_sample
from mfr.session import get_spark


def try_commands(mfr: str, overrides: list[str], schema: str) -> list[str]:
    """Commands that look at what the demo wrote, with the demo's own ``--set`` options (a warehouse put
    elsewhere is read from there), ready to paste into a shell."""
    sets = "".join(f" --set {shlex.quote(o)}" for o in overrides)
    queries = [
        f"SELECT source, count(*) AS n FROM {schema}.collected GROUP BY source",
        f"SELECT count(*) AS n FROM {schema}.collected VERSION AS OF 0",
        f"SELECT stage, reason, sample_key FROM {schema}.quarantine",
    ]
    return [f"{mfr} history{sets}", f"{mfr} sql{sets} {shlex.quote(queries[0])}",
            f"{mfr} sql --json{sets} {shlex.quote(queries[1])}", f"{mfr} sql{sets} {shlex.quote(queries[2])}"]


def _mfr_command() -> str:
    """The ``mfr`` script of this Python's environment, relative to the working folder when inside it
    (``.venv/bin/mfr`` after ``make demo``), else ``mfr`` when that one is first on PATH."""
    import shutil

    script = Path(sys.executable).parent / "mfr"
    if not script.is_file():
        return "mfr"
    on_path = shutil.which("mfr")
    if on_path and Path(on_path).resolve() == script.resolve():
        return "mfr"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


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
    print("\nTry:\n" + "\n".join(f"  {line}" for line in try_commands(_mfr_command(), args.overrides, schema)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
