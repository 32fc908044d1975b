"""The ``mfr`` command: run stages, list runs, query tables, write a synthetic dump."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mfr.config import Config, ConfigError, config_from_mapping, load_config
from mfr.printing import format_table, rows_as_json
from mfr.resources import default_config
from mfr.stages.registry import NAMES

if TYPE_CHECKING:  # pragma: no cover
    from mfr.runner import RunResult


def default_config_path() -> str | None:
    """``--config``, else ``$MFR_CONFIG``, else the repo's ``conf/local.yaml`` (the embedded default)."""
    if os.environ.get("MFR_CONFIG"):
        return os.environ["MFR_CONFIG"]
    local = default_config()
    return str(local) if local else None


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (default: $MFR_CONFIG or conf/local.yaml)")
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set collection.max_samples=100 (repeatable; lists and null too)",
    )


def build_parser() -> argparse.ArgumentParser:
    from mfr import __version__

    parser = argparse.ArgumentParser(prog="mfr", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mfr {__version__}")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a stage (or all built stages) and record it in <schema>.runs")
    run.add_argument("--stage", required=True, choices=[*NAMES, "all"])  # registered stages included
    run.add_argument("--from-run", help="re-run on the inputs an earlier run of this stage used")
    run.add_argument("--full", action="store_true",
                     help="recompute every row even where the stage's last run could be reused (runs.incremental)")
    run.add_argument("--json", action="store_true", help="print the run summary as one JSON object (funnels go to stderr)")
    run.add_argument("--strict", action="store_true", help=f"exit {EXIT_PENDING} when any row ends pending_model")
    _add_config_args(run)

    hist = sub.add_parser("history", help="list stage runs with their table versions and counts")
    hist.add_argument("stage", nargs="?", choices=list(NAMES))
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
    config = sub.add_parser("config", help="configuration tools")
    csub = config.add_subparsers(dest="config_command", required=True)
    imp = csub.add_parser("import", help="print the MMFineReason seed's config.yaml as an mfr config (YAML)")
    imp.add_argument("seed", help="the seed's config.yaml")
    return parser


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config or default_config_path(), args.overrides)


def cmd_run(args: argparse.Namespace) -> int:
    from mfr.pipeline import run_pipeline

    cfg = load(args)
    results = run_pipeline(cfg, [args.stage] if args.stage != "all" else None, from_run=args.from_run,
                           out=sys.stderr if args.json else sys.stdout, full=args.full)
    pending = sum(int(r.metrics.get("rejected.pending_model", 0)) for r in results)
    if args.json:
        print(json.dumps({"runs": [run_summary(r) for r in results], "pending_model": pending}, indent=1))
    if args.strict and pending:
        print(f"mfr: {pending} rows wait for a model (pending_model); set the endpoints the funnel names", file=sys.stderr)
        return EXIT_PENDING
    return 0


def run_summary(r: RunResult) -> dict[str, Any]:
    rejects = {k.split(".", 1)[1]: int(v) for k, v in r.metrics.items() if k.startswith("rejected.")}
    return {"run_id": r.run_id, "stage": r.stage, "output_table": r.output_table, "output_version": r.output_version,
            "rows_in": r.rows_in, "rows_kept": r.rows_kept, "rows_rejected": r.rows_rejected,
            "rows_quarantined": r.rows_quarantined, "rejected_by_reason": rejects, "mode": r.mode,
            "rows_computed": int(r.metrics.get("incremental.rows_processed", r.rows_in)), "wrote": r.wrote}


def cmd_history(args: argparse.Namespace) -> int:
    from mfr.lakehouse import Lakehouse
    from mfr.runlog import RunLog
    from mfr.session import get_spark

    cfg = load(args)
    lh = Lakehouse(get_spark(cfg), cfg)
    cols = [
        "run_id", "stage", "status", "started_at", "input_versions", "output_table", "output_version",
        "rows_in", "rows_kept", "rows_rejected", "rows_quarantined", "config_hash", "mode", "error",
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
    from mfr.lakehouse import Lakehouse, new_run_id
    from mfr.session import get_spark
    from mfr.writer_lock import lakehouse_held, statement_writes

    cfg = load(args)
    spark = get_spark(cfg)
    lh = Lakehouse(spark, cfg)
    if not cfg.settings.lakehouse.catalog:  # a first query on a fresh laptop finds the schema
        lh.create_schema()
    # a hand correction commits like a stage: it waits for the lakehouse too (Spark runs a command at spark.sql)
    with lakehouse_held(lh, new_run_id("sql")) if statement_writes(args.query) else contextlib.nullcontext():
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


def cmd_config(args: argparse.Namespace) -> int:
    import yaml

    from mfr.seed_config import import_seed, render

    try:
        seed = yaml.safe_load(Path(args.seed).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"seed config not found: {args.seed}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{args.seed}: not valid YAML: {exc}") from None
    if not isinstance(seed, dict):
        raise ConfigError(f"{args.seed}: not a mapping of keys")
    tree, notes = import_seed(seed)
    config_from_mapping(tree, f"config imported from {args.seed}")  # what we print must load as it is
    sys.stdout.write(render(tree, notes, args.seed))
    for note in notes:
        print(f"mfr config import: {note}", file=sys.stderr)
    return 0


COMMANDS = {"run": cmd_run, "config": cmd_config, "history": cmd_history, "sql": cmd_sql, "report": cmd_report, "sample": cmd_sample}


EXIT_ERROR, EXIT_PENDING = 2, 3


def error_line(exc: BaseException) -> str:
    """What went wrong, in one line: the kind and the first line of the message (Spark's are long)."""
    from mfr.dump.layout import DumpError
    from mfr.jars import SetupError
    from mfr.runlog import StageBusy
    from mfr.session import MetastoreBusy
    from mfr.storage import StorageError

    if isinstance(exc, MetastoreBusy):
        return str(exc)
    text = str(exc)
    if "Another instance of Derby may have already booted the database" in text or "XSDB6" in text:
        return ("another mfr command holds the embedded metastore of this lakehouse (one local command at a time): "
                "wait for it to finish, or point lakehouse.warehouse elsewhere")
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    if isinstance(exc, (ConfigError, FileExistsError, KeyError)) or type(exc) is ValueError:
        kind = "error"
    elif isinstance(exc, DumpError):
        kind = "dump error"
    elif isinstance(exc, StorageError):
        kind = "storage error"
    elif isinstance(exc, SetupError):
        kind = "setup error"
    elif isinstance(exc, StageBusy):
        kind = "busy"
    else:
        kind = f"error ({type(exc).__name__})"
    return f"{kind}: {first[:2000]}"


@contextlib.contextmanager
def document_on_stdout(enabled: bool) -> Iterator[None]:
    """With ``--json`` the command's standard output carries the JSON document and nothing else: while it
    runs, file descriptor 1 (which the JVM pyspark starts inherits, and with it Ivy's resolution lines and
    anything else the JVM or a native library prints) points at stderr, and ``sys.stdout`` writes to the real
    stdout. Only where ``sys.stdout`` is the process's own (an in-process caller that captures it is left as is)."""
    try:
        real = enabled and sys.stdout.fileno() == 1
    except (AttributeError, OSError, ValueError):  # captured or replaced: not the process's descriptor
        real = False
    if not real:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    original = sys.stdout
    sys.stdout = document = open(saved, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - closed below
    try:
        yield
    finally:
        document.close()  # flushes; the descriptor itself is put back and closed next
        os.dup2(saved, 1)
        os.close(saved)
        sys.stdout = original


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if not args.verbose:  # pyspark logs every failed query's JVM trace as JSON: the one error line says it
        logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    from mfr.session import jvm_running, owned_sessions, stop_jvm, stop_owned_since

    mark = owned_sessions()
    jvm_before = jvm_running()
    with document_on_stdout(bool(getattr(args, "json", False))):
        try:
            return COMMANDS[args.command](args)
        except Exception as exc:  # one clear line and a non-zero exit; the traceback only with --verbose
            if args.verbose:
                traceback.print_exc()
            print(f"mfr: {error_line(exc)}", file=sys.stderr)
            return EXIT_ERROR
        finally:
            stop_owned_since(mark)  # a clean shutdown (local-cluster executors included), not the JVM's exit hooks
            if not jvm_before and jvm_running():
                stop_jvm()  # the command returns once its JVM has let go of the embedded metastore


if __name__ == "__main__":
    sys.exit(main())
