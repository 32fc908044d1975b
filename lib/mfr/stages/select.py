"""Stage 4, select: quality filters, answer verification, difficulty, and the published subsets.

Every row kept by distill gets each filter's decision as a column and ``reject_reason`` = the first
failing filter in the seed's order (content, structure, repetition, correctness, difficulty). The gold
subsets are views over the selection:

* ``<schema>.mmfr_selected``: quality + correctness (the MMFineReason-1.8M analogue);
* ``<schema>.mmfr_hard``: those with ``pass_rate < 1`` (the 586K analogue);
* ``<schema>.mmfr_hardest``: those with ``pass_rate = 0`` (the 123K analogue).

``pass_rate`` comes from the small-model probe when ``selection.difficulty.client`` is set (n samples
in one request, graded by the verifier), else from the dump (``source_pass_rate``). Answers the rules
cannot decide go to an LLM judge when ``selection.verify.client`` is set; without one they count as not
consistent.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.answers.judge import parse_judgment
from mfr.answers.verify import pass_rate as graded_pass_rate
from mfr.answers.verify import predicted_answer
from mfr.filters import SelectionRules, check_row
from mfr.llm.calls import ask_many
from mfr.llm.client import ClientSettings
from mfr.llm.requests import Ask, prompt_requests
from mfr.stages.common import StageContext, StageOutput, blank, persist, reason, with_carried
from mfr.vectorized import pandas_udf, python_udf

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
    @pandas_udf(CHECKS_TYPE)
    def checks(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.DataFrame]:
        for source, question, answer, response, caption in batches:
            out = []
            for s, q, a, r, c in zip(source, question, answer, response, caption):
                rc = check_row(s, q, a, r, c, rules)
                out.append((rc.content, rc.structure, rc.repetition, rc.verdict.consistent,
                            rc.verdict.method, rc.verdict.analysis))
            yield pd.DataFrame(out, columns=DECISION_COLUMNS).astype({"is_consistent": "object"})

    return checks


def _judge_requests(ctx: StageContext, checked: DataFrame, settings: ClientSettings) -> DataFrame:
    """Requests to the LLM judge for the answers the rules could not decide."""
    cfg = ctx.cfg
    undecided = checked.where(
        F.col("is_consistent").isNull() & F.col("content_reason").isNull() & F.col("structure_reason").isNull()
        & F.col("repetition_reason").isNull() & ~blank(F.col("answer"))  # no gold: nothing to judge
    )
    pred = python_udf(predicted_answer, T.StringType())
    params = {"temperature": cfg.settings.selection.verify.temperature, "max_tokens": cfg.settings.selection.verify.max_tokens, "n": 1}
    return prompt_requests(
        undecided.select("sample_key", "image_id", "question", F.col("answer").alias("gold"), pred("cot_response").alias("predicted")),
        purpose="verify", settings=settings, prompt=cfg.settings.selection.verify.prompt, params=params,
        fields=["question", "gold", "predicted"], with_image=False,
    )


def _apply_judge(checked: DataFrame, replies: DataFrame) -> DataFrame:
    """The judge's verdict fills is_consistent where the rules left it undecided."""
    judge = python_udf(lambda choices: parse_judgment(choices[0]["text"]) if choices else None, T.BooleanType())
    verdicts = replies.select(
        "sample_key", judge("choices").alias("_j"), F.expr("try_element_at(choices, 1).text").alias("_reply")
    )
    joined = checked.join(verdicts, "sample_key", "left")
    judged = F.col("is_consistent").isNull() & F.col("_j").isNotNull()
    return joined.select(
        *[c for c in checked.columns if c not in ("is_consistent", "consistency_method", "consistency_analysis")],
        F.when(judged, F.col("_j")).otherwise(F.col("is_consistent")).alias("is_consistent"),
        F.when(judged, F.lit("llm_judge")).otherwise(F.col("consistency_method")).alias("consistency_method"),
        F.when(judged, F.substring(F.col("_reply"), -2000, 2000)).otherwise(F.col("consistency_analysis")).alias("consistency_analysis"),
    ).select(*checked.columns)


def _probe_candidates(ctx: StageContext, checked: DataFrame, gate: str) -> DataFrame:
    """Rows the probe grades: every quality filter passed, consistent (when correctness gates), a gold answer."""
    quality = (F.col("content_reason").isNull() & F.col("structure_reason").isNull()
               & F.col("repetition_reason").isNull())
    if ctx.cfg.settings.selection.quality.consistency:
        quality = quality & F.coalesce(gate_columns(gate)[0], F.lit(False))
    graded = F.coalesce(F.trim(F.col("answer")), F.lit("")) != ""  # no gold: nothing to grade samples by
    return checked.where(quality & graded).select("sample_key", "image_id", "question", "answer")


def _probe_requests(ctx: StageContext, candidates: DataFrame, settings: ClientSettings) -> DataFrame:
    """n samples of the small model in one request (shared prefill)."""
    d = ctx.cfg.settings.selection.difficulty
    params = {"temperature": d.temperature, "top_p": d.top_p, "max_tokens": d.max_tokens, "n": int(d.num_samples)}
    return prompt_requests(candidates.select("sample_key", "image_id", "question"), purpose="pass_rate",
                           settings=settings, prompt=d.prompt, params=params, fields=["question"], with_image=True)


def _grade(candidates: DataFrame, answers: DataFrame) -> DataFrame:
    """pass_rate of the probe's samples, graded by the verifier against the gold answer."""

    @pandas_udf(T.DoubleType())
    def grade(question: pd.Series, gold: pd.Series, choices: pd.Series) -> pd.Series:
        return pd.Series([
            graded_pass_rate(q, g, [(c["text"], c["finish_reason"]) for c in (ch if ch is not None else [])])
            for q, g, ch in zip(question, gold, choices)
        ], dtype="float64")

    return candidates.select("sample_key", "question", "answer").join(answers, "sample_key").select(
        "sample_key", grade("question", "answer", "choices").alias("_probe_pass_rate")
    )


def ask_judge_and_probe(ctx: StageContext, checked: DataFrame, gate: str, judge_client: ClientSettings | None,
                        probe_client: ClientSettings | None) -> DataFrame:
    """The judge and the probe side by side: the probe starts with the rows already consistent while the
    judge decides the rest, then grades the rows the judge found consistent. Returns ``checked`` with the
    judge's verdicts and ``_probe_pass_rate`` (null when not probed)."""
    asks = []
    if judge_client is not None:
        asks.append(Ask(_judge_requests(ctx, checked, judge_client), judge_client, "verify"))
    first = None
    if probe_client is not None:
        first = persist(ctx, _probe_candidates(ctx, checked, gate), "probe-0")
        asks.append(Ask(_probe_requests(ctx, first, probe_client), probe_client, "pass_rate"))
    replies = ask_many(ctx.calls(), asks) if asks else {}
    if judge_client is not None:
        checked = persist(ctx, _apply_judge(checked, replies["verify"]), "judged")
    if probe_client is None or first is None:
        return checked.withColumn("_probe_pass_rate", F.lit(None).cast("double"))
    probed = _grade(first, replies["pass_rate"])
    if judge_client is not None:  # rows the judge made consistent
        later = persist(ctx, _probe_candidates(ctx, checked, gate).join(first.select("sample_key"), "sample_key", "left_anti"), "probe-1")
        if later.limit(1).count():
            answers = ask_many(ctx.calls(), [Ask(_probe_requests(ctx, later, probe_client), probe_client, "pass_rate")])["pass_rate"]
            probed = probed.unionByName(_grade(later, answers))
    return checked.join(probed, "sample_key", "left")


def select(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    judge_client = ClientSettings.optional(cfg.settings.selection.verify.client, "selection.verify.client")
    probe_client = ClientSettings.optional(cfg.settings.selection.difficulty.client, "selection.difficulty.client")
    gate = cfg.settings.selection.consistency.gate
    if gate not in GATES:
        raise ValueError(f"selection.consistency.gate must be one of {', '.join(GATES)}, got {gate!r}")
    source = ctx.read_input("distilled")
    rows = source.where(F.col("reject_reason").isNull())
    rows_in = rows.count()
    rows = ctx.to_process(rows)  # an incremental run: the stale rows only
    base = [c for c in source.columns if c not in ("reject_reason", "reject_detail", "run_id", *DECISION_COLUMNS, "pass_rate")]
    # rows kept by distill have no detail of their own: select's column says why select rejected a row
    rules = SelectionRules.from_config(cfg)
    checked = rows.select(
        *base,
        _checks_udf(rules)(F.col("source"), F.col("question"), F.col("answer"), F.col("cot_response"), F.col("caption")).alias("_c"),
    ).select(*base, *[F.col(f"_c.{c}").alias(c) for c in DECISION_COLUMNS])
    checked = persist(ctx, checked, "checked")  # the checks run once, whatever reads them after
    checked = ask_judge_and_probe(ctx, checked, gate, judge_client, probe_client)
    pass_rate = F.col("_probe_pass_rate") if probe_client is not None else F.col("source_pass_rate")
    decided = decide(checked.withColumn("pass_rate", pass_rate), gate=gate,
                     consistency=bool(cfg.settings.selection.quality.consistency), threshold=cfg.settings.selection.difficulty.threshold)
    checks = [c for c in DECISION_COLUMNS if c not in OWN_VERDICT]
    out = decided.select(*base, *checks, *verdict_columns(gate), "pass_rate", "reject_reason", "reject_detail",
                         F.lit(ctx.run_id).alias("run_id"))
    metrics = regeneration_outcome(out) if cfg.settings.distillation.cot.regenerate_on else {}
    return StageOutput(rows=with_carried(ctx, out, "selected"), rows_in=rows_in, after_write=_after_write, metrics=metrics,
                       candidates=ctx.stale())


def regeneration_outcome(judged: DataFrame) -> dict[str, float]:
    """Of the rows this run judged, those whose CoT distill regenerated by policy, and how many of them stay."""
    if "cot_regenerations" not in judged.columns:
        return {}
    again = judged.where(F.col("cot_regenerations") > 0)
    row = again.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("reject_reason").isNull().cast("int")).alias("kept")).collect()[0]
    return {"regenerate.judged": float(row["n"] or 0), "regenerate.kept": float(row["kept"] or 0)}


GATES = ("auto", "computed", "source")


def _from_dump(gate: str) -> Column:
    """Where the gate takes the dump's label. ``computed``: nowhere (our verdict); ``source``: everywhere;
    ``auto``: where the row still carries the dump's own trace (the label was given to that trace) and the
    dump labelled it, our verdict for traces we distilled or rows the dump did not label."""
    if gate == "computed":
        return F.lit(False)
    if gate == "source":
        return F.lit(True)
    return (F.col("cot_origin") == "dump") & F.col("source_is_consistent").isNotNull()


def gate_columns(gate: str) -> tuple[Column, Column]:
    """(label, analysis) that gate correctness: the dump's where :func:`_from_dump`, else our verdict."""
    dump = _from_dump(gate)
    return (F.when(dump, F.col("source_is_consistent")).otherwise(F.col("is_consistent")),
            F.when(dump, F.col("source_consistency_analysis")).otherwise(F.col("consistency_analysis")))


# our verdict beside the one that decided a row (the checks' own columns, renamed in the written table)
OWN_VERDICT = {"is_consistent": "mfr_is_consistent", "consistency_method": "mfr_consistency_method",
               "consistency_analysis": "mfr_consistency_analysis"}


def verdict_columns(gate: str) -> list[Column]:
    """The written table's verdict columns: ``is_consistent``, ``consistency_method`` and
    ``consistency_analysis`` are the verdict the gate applied (the dump's label, method ``dump_label``, or
    ours), the one a user filters on and the one ``answer_mismatch`` followed; ``mfr_*`` are our own
    verdict (rules, else the judge) whichever decided. Needs the checks' columns."""
    dump = _from_dump(gate)
    label, analysis = gate_columns(gate)
    return [label.alias("is_consistent"),
            F.when(dump, F.lit("dump_label")).otherwise(F.col("consistency_method")).alias("consistency_method"),
            analysis.alias("consistency_analysis"),
            *[F.col(c).alias(mine) for c, mine in OWN_VERDICT.items()]]


def decide(checked: DataFrame, *, gate: str, consistency: bool, threshold: float | None) -> DataFrame:
    """``reject_reason``: the first failing filter in the seed's order (content, structure, repetition,
    correctness, difficulty); ``reject_detail``: the verdict's analysis for a mismatch, the pass rate for
    a row too easy. Needs the decision columns and ``pass_rate``."""
    gate_col, analysis = gate_columns(gate)
    mismatch = ~F.coalesce(gate_col, F.lit(False)) if consistency else F.lit(False)
    rate = F.col("pass_rate")
    no_rate = rate.isNull() if threshold is not None else F.lit(False)
    easy = rate > F.lit(threshold) if threshold is not None else F.lit(False)
    why = (
        F.when(F.col("content_reason").isNotNull(), F.col("content_reason"))
        .when(F.col("structure_reason").isNotNull(), F.col("structure_reason"))
        .when(F.col("repetition_reason").isNotNull(), F.col("repetition_reason"))
        .when(mismatch, reason("select", "answer_mismatch"))
        .when(no_rate, reason("select", "pass_rate_missing"))
        .when(easy, reason("select", "too_easy"))
    )
    detail = (
        F.when(why == "answer_mismatch", analysis)
        .when(why == "too_easy", F.format_string("pass_rate %s > threshold %s", rate.cast("string"), F.lit(str(threshold))))
    )
    return checked.withColumn("reject_reason", why.cast("string")).withColumn("reject_detail", detail.cast("string"))


def verdict_counts(df: DataFrame, *by: str) -> list:
    """Per group of ``by`` (one row without): labelled rows, where mfr's own verdict (``mfr_is_consistent``,
    undecided counted as not consistent) agrees with the dump's label, undecided, false accepts (ours
    consistent, the label not), and rows whose ``is_consistent`` is the dump's label."""
    ours, label = F.coalesce(F.col("mfr_is_consistent"), F.lit(False)), F.col("source_is_consistent")
    labelled = label.isNotNull()
    return df.groupBy(*by).agg(
        F.sum(labelled.cast("int")).alias("labelled"),
        F.sum((labelled & (ours == label)).cast("int")).alias("agree"),
        F.sum((labelled & F.col("mfr_is_consistent").isNull()).cast("int")).alias("undecided"),
        F.sum((labelled & ours & ~label).cast("int")).alias("false_accepts"),
        F.sum((F.col("consistency_method") == "dump_label").cast("int")).alias("by_dump"),
    ).collect()


def agreement(df: DataFrame) -> dict[str, float]:
    """mfr's own verdict against the dump's label on every row that has both (the no-answer-check sources
    too): agreement, the undecided count and rate (the judge's share), and false accepts."""
    row = verdict_counts(df)[0]
    n = int(row["labelled"] or 0)
    return {
        "consistency.labelled_rows": float(n),
        "consistency.agreement": (row["agree"] or 0) / n if n else 0.0,
        "consistency.undecided": float(row["undecided"] or 0),
        "consistency.undecided_rate": (row["undecided"] or 0) / n if n else 0.0,
        "consistency.false_accepts": float(row["false_accepts"] or 0),
    }


def _after_write(spark: SparkSession, lakehouse, version: int) -> dict[str, float]:
    """Publish the subset views and measure agreement with the dump's labels on the written version."""
    for view, where in SUBSET_VIEWS.items():
        lakehouse.create_view(view, "selected", where)
    written = lakehouse.read("selected", version)
    metrics = agreement(written)
    for view, where in SUBSET_VIEWS.items():
        metrics[f"subset.{view}"] = float(written.where(where).count())
    return metrics
