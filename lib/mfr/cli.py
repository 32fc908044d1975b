"""The ``mfr`` command: run stages, list runs, query tables, write a synthetic dump."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mfr.config import Config, ConfigError, load_config
from mfr.printing import format_table, rows_as_json
from mfr.session import REPO_ROOT
from mfr.stages.registry import NAMES

STAGE_CHOICES = [*NAMES, "all"]


def default_config_path() -> str | None:
    """``--config``, else ``$MFR_CONFIG``, else the repo's ``conf/local.yaml`` (the embedded default)."""
    if os.environ.get("MFR_CONFIG"):
        return os.environ["MFR_CONFIG"]
    local = REPO_ROOT / "conf" / "local.yaml"
    return str(local) if local.is_file() else None


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (default: $MFR_CONFIG or conf/local.yaml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set collection.max_samples=100 (repeatable; lists and null too)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mfr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a stage (or all built stages) and record it in <schema>.runs")
    run.add_argument("--stage", required=True, choices=STAGE_CHOICES)
    run.add_argument("--from-run", help="re-run on the inputs an earlier run of this stage used")
    _add_config_args(run)

    hist = sub.add_parser("history", help="list stage runs with their table versions and counts")
    hist.add_argument("stage", nargs="?", choices=STAGE_CHOICES[:-1])
    hist.add_argument("--json", action="store_true", help="print a JSON array")
    _add_config_args(hist)

    sql = sub.add_parser("sql", help="run Spark SQL (VERSION AS OF and DESCRIBE HISTORY included)")
    sql.add_argument("query")
    sql.add_argument("--json", action="store_true", help="print a JSON array of row objects (binary as base64)")
    sql.add_argument("--limit", type=int, default=100, help="rows to print as a table (default 100)")
    _add_config_args(sql)

    report = sub.add_parser("report", help="write an HTML page with figures of a run (or the latest tables)")
    report.add_argument("--run", dest="run_id", help="report on this run and the table versions it rests on")
    report.add_argument("--out", help="folder for index.html and the PNGs (default <warehouse>/reports/<run>)")
    _add_config_args(report)

    sample = sub.add_parser("sample", help="write a deterministic synthetic dump in the HF layout")
    sample.add_argument("--rows", type=int, required=True)
    sample.add_argument("--out", required=True)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--force", action="store_true", help="replace a non-empty folder")
    return parser


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path(), args.overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from mfr.pipeline import run_pipeline

    cfg = load(args)
    run_pipeline(cfg, [args.stage] if args.stage != "all" else None, from_run=args.from_run, out=sys.stdout)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from mfr.lakehouse import Lakehouse
    from mfr.runlog import RunLog
    from mfr.session import get_spark

    cfg = load(args)
    lh = Lakehouse(get_spark(cfg), cfg)
    cols = [
        "run_id", "stage", "status", "started_at", "input_versions", "output_table", "output_version",
        "rows_in", "rows_kept", "rows_rejected", "rows_quarantined", "config_hash", "error",
    ]
    rows = RunLog(lh).list(args.stage).select(*cols).collect()
    if args.json:
        print(rows_as_json(rows))
    elif not rows:
        print("no runs yet")
    else:
        print(format_table(cols, [list(r) for r in rows], width=40))
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from mfr.session import get_spark

    cfg = load(args)
    spark = get_spark(cfg)
    if not cfg.settings.lakehouse.catalog:  # a first query on a fresh laptop finds the schema
        spark.sql(f"CREATE SCHEMA IF NOT EXISTS {cfg.settings.lakehouse.schema}")
    df = spark.sql(args.query)
    if args.json:
        print(rows_as_json(df.collect()))
        return 0
    rows = df.limit(args.limit + 1).collect()
    print(format_table(df.columns, [list(r) for r in rows[: args.limit]]))
    if len(rows) > args.limit:
        print(f"(first {args.limit} rows; use --limit or --json for more)")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from mfr.sample.synthetic import write_sample

    counts = write_sample(Path(args.out), args.rows, seed=args.seed, force=args.force)
    print(f"wrote {sum(counts.values())} rows to {args.out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mfr.report import write_report
    from mfr.session import get_spark

    cfg = load(args)
    page = write_report(get_spark(cfg), cfg, args.run_id, args.out)
    print(f"report: {page}")
    return 0


COMMANDS = {"run": cmd_run, "history": cmd_history, "sql": cmd_sql, "report": cmd_report, "sample": cmd_sample}


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    from mfr.session import owned_sessions, stop_owned_since

    mark = owned_sessions()
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FileExistsError, ValueError, KeyError) as exc:
        from mfr.dump.layout import DumpError

        kind = "dump error" if isinstance(exc, DumpError) else "error"
        print(f"mfr: {kind}: {exc}", file=sys.stderr)
        return 2
    finally:
        stop_owned_since(mark)  # a clean shutdown (local-cluster executors included), not the JVM's exit hooks


if __name__ == "__main__":
    sys.exit(main())
