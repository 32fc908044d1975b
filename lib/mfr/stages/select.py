"""Stage 4, select: quality filters, answer verification, difficulty, and the published subsets.

Every row kept by distill gets each filter's decision as a column and ``reject_reason`` = the first
failing filter in the seed's order (content, structure, repetition, correctness, difficulty). The gold
subsets are views over the selection:

* ``<schema>.mmfr_selected``: quality + correctness (the MMFineReason-1.8M analogue);
* ``<schema>.mmfr_hard``: those with ``pass_rate < 1`` (the 586K analogue);
* ``<schema>.mmfr_hardest``: those with ``pass_rate = 0`` (the 123K analogue).

``pass_rate`` is the dump's (``source_pass_rate``) until the small-model probe is configured.
"""

from __future__ import annotations

import logging
from typing import Iterator

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.filters import SelectionRules, check_row
from mfr.stages.common import StageContext, StageOutput

log = logging.getLogger(__name__)

CHECKS_TYPE = T.StructType(
    [
        T.StructField("content_reason", T.StringType()),
        T.StructField("structure_reason", T.StringType()),
        T.StructField("repetition_reason", T.StringType()),
        T.StructField("is_consistent", T.BooleanType()),
        T.StructField("consistency_method", T.StringType()),
        T.StructField("consistency_analysis", T.StringType()),
    ]
)
DECISION_COLUMNS = [f.name for f in CHECKS_TYPE.fields]
SUBSET_VIEWS = {
    "mmfr_selected": "reject_reason IS NULL",
    "mmfr_hard": "reject_reason IS NULL AND pass_rate < 1",
    "mmfr_hardest": "reject_reason IS NULL AND pass_rate = 0",
}


def _checks_udf(rules: SelectionRules):
    @F.pandas_udf(CHECKS_TYPE)  # type: ignore[call-overload]
    def checks(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        for source, question, answer, response, caption in batches:
            out = []
            for s, q, a, r, c in zip(source, question, answer, response, caption):
                rc = check_row(s, q, a, r, c, rules)
                out.append((rc.content, rc.structure, rc.repetition, rc.verdict.consistent,
                            rc.verdict.method, rc.verdict.analysis))
            yield pd.DataFrame(out, columns=DECISION_COLUMNS).astype({"is_consistent": "object"})

    return checks


def _not_built(cfg, key: str) -> None:  # noqa: ANN001
    if cfg.get(f"{key}.api_base"):
        raise ValueError(f"{key} is set, but the model-based part of selection is not built yet; unset it")


def select(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    _not_built(cfg, "selection.difficulty.client")
    gate = cfg.get("selection.consistency.gate")
    if gate not in ("computed", "source"):
        raise ValueError(f"selection.consistency.gate must be computed or source, got {gate!r}")
    source = ctx.read_input("distilled")
    rows = source.where(F.col("reject_reason").isNull())
    rows_in = rows.count()
    base = [c for c in source.columns if c not in ("reject_reason", "reject_detail", "run_id", *DECISION_COLUMNS, "pass_rate")]
    rules = SelectionRules.from_config(cfg)
    checked = rows.select(
        *base,
        _checks_udf(rules)(F.col("source"), F.col("question"), F.col("answer"), F.col("cot_response"), F.col("caption")).alias("_c"),
    ).select(*base, *[F.col(f"_c.{c}").alias(c) for c in DECISION_COLUMNS])
    pass_rate = F.col("source_pass_rate")
    gate_col = F.col("is_consistent") if gate == "computed" else F.col("source_is_consistent")
    correctness = (
        F.when(~F.coalesce(gate_col, F.lit(False)), F.lit("answer_mismatch"))
        if cfg.get("selection.quality.consistency") else F.lit(None).cast("string")
    )
    threshold = cfg.get("selection.difficulty.threshold")
    difficulty = (
        F.when(F.col("pass_rate").isNull(), F.lit("pass_rate_missing")).when(F.col("pass_rate") > threshold, F.lit("too_easy"))
        if threshold is not None else F.lit(None).cast("string")
    )
    out = checked.withColumn("pass_rate", pass_rate).select(
        *base,
        *DECISION_COLUMNS,
        "pass_rate",
        F.coalesce(F.col("content_reason"), F.col("structure_reason"), F.col("repetition_reason"), correctness, difficulty)
        .cast("string").alias("reject_reason"),
        F.lit(ctx.run_id).alias("run_id"),
    )
    return StageOutput(rows=out, rows_in=rows_in, after_write=_after_write)


def agreement(df: DataFrame) -> dict[str, float]:
    """How often our verdict (undecided = not consistent) equals the dump's label, where both exist."""
    both = df.where(F.col("source_is_consistent").isNotNull())
    row = both.agg(
        F.count("*").alias("n"),
        F.sum((F.coalesce(F.col("is_consistent"), F.lit(False)) == F.col("source_is_consistent")).cast("int")).alias("agree"),
        F.sum(F.col("is_consistent").isNull().cast("int")).alias("undecided"),
    ).collect()[0]
    n = int(row["n"] or 0)
    return {
        "consistency.labelled_rows": float(n),
        "consistency.agreement": (row["agree"] or 0) / n if n else 0.0,
        "consistency.undecided": float(row["undecided"] or 0),
    }


def _after_write(spark: SparkSession, lakehouse, version: int) -> dict[str, float]:  # noqa: ANN001
    """Publish the subset views and measure agreement with the dump's labels on the written version."""
    table = lakehouse.name("selected")
    for view, where in SUBSET_VIEWS.items():
        spark.sql(f"CREATE OR REPLACE VIEW {lakehouse.name(view)} AS SELECT * FROM {table} WHERE {where}")
    written = lakehouse.read("selected", version)
    metrics = agreement(written)
    for view, where in SUBSET_VIEWS.items():
        metrics[f"subset.{view}"] = float(written.where(where).count())
    return metrics
