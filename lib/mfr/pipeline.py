"""Run stages in order and print what they did: a funnel per stage and source, and the versions written."""

from __future__ import annotations

from typing import TextIO

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from mfr.config import Config
from mfr.lakehouse import Lakehouse
from mfr.printing import format_table
from mfr.runner import Outcomes, RunResult, run_stage
from mfr.session import get_spark
from mfr.stages.registry import NAMES


def run_pipeline(
    cfg: Config,
    stages: list[str] | None = None,
    from_run: str | None = None,
    out: TextIO | None = None,
    spark: SparkSession | None = None,
    full: bool = False,
) -> list[RunResult]:
    """Run ``stages`` (None = every stage in pipeline order) and print funnels; ``full``: no stage reuses
    its last run (``mfr.incremental``)."""
    spark = spark or get_spark(cfg)
    todo = stages or list(NAMES)
    results = []
    for stage in todo:
        result = run_stage(spark, cfg, stage, from_run=from_run, full=full)
        results.append(result)
        if out:
            print(format_run(result), file=out)
            print(format_funnel(result), file=out)
            for hint in pending_hints(spark, cfg, result):
                print(f"   pending_model: {hint}", file=out)
    return results


def format_run(r: RunResult) -> str:
    m = r.metrics
    text = (
        f"\n== {r.stage}: run {r.run_id} {'wrote' if r.wrote else 'changed nothing in'} {r.output_table} "
        f"version {r.output_version}\n"
        f"   {r.mode or 'full'}; rows computed {int(m.get('incremental.rows_processed', r.rows_in))}\n"
        f"   rows in {r.rows_in} = kept {r.rows_kept} + rejected {r.rows_rejected} + quarantined {r.rows_quarantined}"
    )
    if "consistency.agreement" in m:
        text += (
            f"\n   agreement with the dump's is_consistent: {m['consistency.agreement']:.3f} over "
            f"{int(m['consistency.labelled_rows'])} labelled rows ({int(m['consistency.undecided'])} undecided by rules)"
        )
    subsets = {k.split(".", 1)[1]: int(v) for k, v in m.items() if k.startswith("subset.")}
    if subsets:
        text += "\n   subsets: " + ", ".join(f"{k}={v}" for k, v in subsets.items())
    return text


def funnel_rows(outcomes: Outcomes) -> list[tuple[str, int, int, int, str]]:
    """(source, rows in, kept, rejected, reasons) per source of one run: its written rows plus its
    quarantined ones, reasons by count (most first)."""
    sources = {source for source, _ in outcomes.written} | {source for source, _ in outcomes.quarantined}
    out = []
    for source in sorted(sources, key=lambda s: (s is None, s or "")):
        counts = {reason: n for (src, reason), n in outcomes.written.items() if src == source}
        n, kept = sum(counts.values()), counts.get(None, 0)
        q = sum(c for (src, _), c in outcomes.quarantined.items() if src == source)
        rejected = sorted(((r, c) for r, c in counts.items() if r is not None), key=lambda rc: (-rc[1], rc[0]))
        extra = [f"{r}={c}" for r, c in rejected] + ([f"quarantined={q}"] if q else [])
        out.append((source if source is not None else "(no source)", n + q, kept, n - kept, ", ".join(extra)))
    return out


def pending_hints(spark: SparkSession, cfg: Config, r: RunResult) -> list[str]:
    """What to set so that rows waiting for a model get one (distinct messages of this run)."""
    if not r.metrics.get("rejected.pending_model"):
        return []
    df = Lakehouse(spark, cfg).read(r.output_table.split(".")[-1], r.output_version)
    rows = df.where(F.col("reject_reason") == "pending_model").select("reject_detail").distinct().limit(5).collect()
    return [x["reject_detail"] for x in rows if x["reject_detail"]]


def format_funnel(r: RunResult) -> str:
    rows = funnel_rows(r.outcomes)
    return format_table(["source", "in", "kept", "rejected", "reasons"], rows, width=90)
