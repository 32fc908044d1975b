"""Stage 3, distill: chain-of-thought and dense captions from teacher endpoints.

For every row kept by the stage before (cleaned when it exists, else collected), and for each purpose
(``cot``, ``caption``):

* a row that already carries a valid result keeps it (unless ``distillation.overwrite``);
* a stored success in ``<schema>.llm_calls`` for the same model and prompt version is reused: a rerun
  asks nothing for finished rows;
* otherwise the model is asked (the caption is never given to the CoT teacher); an invalid or truncated
  answer is asked again with a new seed (sample index) up to ``max_resamples`` times per run, and a
  later run continues from the next index;
* with no endpoint configured the row is rejected ``pending_model`` and the message names the key to set.

Reject reasons: ``pending_model``, ``llm_error``, ``cot_invalid``, ``cot_truncated``,
``caption_invalid``, ``caption_truncated`` (the CoT's reason first).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr import reasons
from mfr.config import Config
from mfr.filters import exempt_from_answer_check
from mfr.llm.calls import call_many
from mfr.llm.client import ClientSettings, MissingEndpoint
from mfr.llm.requests import Ask, build_requests
from mfr.prompts import load_prompt
from mfr.settings import CaptionConfig, CotConfig
from mfr.stages.common import StageContext, StageOutput, persist, reason, with_carried
from mfr.text.cot import cot_problem, word_count
from mfr.vectorized import pandas_udf

if TYPE_CHECKING:  # pragma: no cover
    from mfr.lakehouse import Lakehouse

log = logging.getLogger(__name__)

NEW_COLUMNS = [
    "cot_prompt_version", "cot_request_key", "caption_prompt_version", "caption_request_key",
    # regeneration by policy (distillation.cot.regenerate_on): times the row's CoT was asked again after select
    # rejected it, and the lowest sample index its trace may come from (null: never regenerated)
    "cot_regenerations", "cot_min_index", "reject_detail",
]


def result_problem(purpose: str, text: str | None, min_words: int, answer_required: bool = True) -> str | None:
    """None when ``text`` is a usable result for ``purpose``, else a short code. ``answer_required`` is
    off for the no-answer-check sources (as at select)."""
    if purpose == "cot":
        return cot_problem(text, min_words=min_words, require_answer=answer_required)
    if not text or not text.strip():
        return "missing"
    return "too_short" if word_count(text) < min_words else None


@dataclass
class Purpose:
    name: str  # cot | caption
    text_col: str
    model_col: str
    origin_col: str
    section: str
    settings: ClientSettings | None
    missing: str | None
    template: str
    prompt_version: str
    params: dict
    min_words: int
    max_resamples: int
    base_seed: int
    exempt: frozenset[str]  # sources that need no answer tag (selection.structure.no_answer_check_sources)


def _purpose(ctx: StageContext, name: str) -> Purpose:
    section = f"distillation.{name}"
    sec: CotConfig | CaptionConfig = getattr(ctx.cfg.settings.distillation, name)
    try:
        settings: ClientSettings | None = dataclasses.replace(
            ClientSettings.from_section(sec.client, f"{section}.client"), keep_thinking=name == "cot")
        missing = None
    except MissingEndpoint as exc:
        settings, missing = None, str(exc)
    template, version = load_prompt(sec.prompt)
    params: dict[str, Any] = {"temperature": sec.temperature, "top_p": sec.top_p, "max_tokens": sec.max_tokens, "n": 1}
    if isinstance(sec, CotConfig):
        params["chat_template_kwargs"] = {"enable_thinking": sec.thinking}
    text_col = "cot_response" if name == "cot" else "caption"
    return Purpose(
        name, text_col, f"{name}_model", f"{name}_origin", section, settings, missing, template, version, params,
        sec.min_words if sec.min_words is not None else ctx.cfg.settings.selection.content.min_caption_words,
        sec.max_resamples, sec.seed, frozenset(ctx.cfg.settings.selection.structure.no_answer_check_sources),
    )


def _problem_udf(name: str, min_words: int, exempt: frozenset[str]):
    @pandas_udf(T.StringType())
    def problem(texts: pd.Series, sources: pd.Series) -> pd.Series:
        return pd.Series([
            result_problem(name, t if isinstance(t, str) else None, min_words,
                           answer_required=not exempt_from_answer_check(s if isinstance(s, str) else None, exempt))
            for t, s in zip(texts, sources)
        ], index=texts.index, dtype=object)

    return problem


def stored_results(ctx: StageContext, p: Purpose, sources: DataFrame, asked: DataFrame | None = None,
                   floors: DataFrame | None = None) -> DataFrame:
    """The stored-result state of this purpose's model and prompt version (see ``stored_state``);
    ``sources``: (sample_key, source) of the rows, for the no-answer-check sources. With ``asked`` (requests
    of this run), only this run's answers to them are read (Delta skips other runs' files by run_id). With
    ``floors`` (sample_key, _floor), a row's answers below its floor are not read (a regenerated row's)."""
    assert p.settings is not None
    calls = ctx.lakehouse.read("llm_calls").where(
        (F.col("purpose") == p.name) & (F.col("model") == p.settings.model) & (F.col("prompt_version") == p.prompt_version)
    )
    if asked is not None:
        calls = calls.where(F.col("run_id") == ctx.run_id).join(asked.select("request_key"), "request_key", "left_semi")
    if floors is not None:
        calls = calls.join(floors, "sample_key", "left").where(F.col("sample_index") >= F.coalesce(F.col("_floor"), F.lit(0)))
    if p.name == "cot" and p.exempt:
        calls = calls.join(sources, "sample_key", "left")
    return stored_state(calls, p.name, p.min_words, p.exempt)


def stored_state(calls: DataFrame, purpose: str, min_words: int, exempt: frozenset[str] = frozenset()) -> DataFrame:
    """Per sample_key of ``calls`` (rows of llm_calls, with the row's ``source`` where known): ``_best`` =
    the valid answer of the lowest sample index (index, text, request_key), ``_next_index`` = one past the
    highest answered index, ``_last`` = the outcome of the latest call (reason code and detail; null reason
    when it was valid)."""
    text = F.expr("try_element_at(choices, 1)")["text"]  # error rows have no choices
    source = F.col("source") if "source" in calls.columns else F.lit(None).cast("string")
    calls = calls.withColumn("_text", text).withColumn("_problem", _problem_udf(purpose, min_words, exempt)(text, source))
    ok = F.col("status") == "ok"
    truncated = F.col("finish_reason") == "length"
    valid = ok & F.col("_problem").isNull() & ~F.coalesce(truncated, F.lit(False))
    outcome = (
        F.when(~ok, reason("distill", "llm_error"))
        .when(truncated, reason("distill", f"{purpose}_truncated"))
        .when(F.col("_problem").isNotNull(), reason("distill", f"{purpose}_invalid"))
    )
    # the detail: the error of a failed call, else the sub-code of an unusable answer
    detail = (
        F.when(~ok, F.col("error"))
        .when(truncated, F.concat(F.lit("finish_reason length after "), F.col("completion_tokens").cast("string"), F.lit(" tokens")))
        .otherwise(F.col("_problem"))
    )
    order = F.struct(F.col("sample_index"), ok.cast("int"), F.col("created_at"))
    return calls.groupBy("sample_key").agg(
        F.min_by(F.when(valid, F.struct("sample_index", "_text", "request_key")), F.when(valid, F.col("sample_index"))).alias("_best"),
        (F.coalesce(F.max(F.when(ok, F.col("sample_index"))), F.lit(-1)) + 1).alias("_next_index"),
        F.max_by(F.struct(outcome.alias("reason"), detail.alias("error")), order).alias("_last"),
    )


def _needs(ctx: StageContext, rows: DataFrame, p: Purpose, overwrite: bool) -> DataFrame:
    """``rows`` with ``_<name>_needs``: the row lacks a valid result for the purpose (or overwrite, or its CoT
    is regenerated)."""
    problem = _problem_udf(p.name, p.min_words, p.exempt)(F.col(p.text_col), F.col("source"))
    needs = F.lit(True) if overwrite else problem.isNotNull()
    if p.name == "cot":
        needs = needs | F.col("cot_regenerations").isNotNull()
    if p.name == "caption":
        needs = needs & F.col("image_id").isNotNull()  # no image, nothing to describe
    return rows.withColumn(f"_{p.name}_needs", needs)


def _first_need(ctx: StageContext, rows: DataFrame, p: Purpose) -> DataFrame:
    """Rows that need the purpose and have no valid stored result: (sample_key, question, image_id,
    sample_index = the next index to ask)."""
    need = (
        rows.where(F.col(f"_{p.name}_needs"))
        .select("sample_key", "question", "image_id", _floor(p, rows))
        .join(stored_results(ctx, p, rows.select("sample_key", "source"), floors=_floors(p, rows)), "sample_key", "left")
        .where(F.col("_best").isNull())
        .select("sample_key", "question", "image_id",
                F.coalesce(F.col("_next_index"), F.col("_floor"), F.lit(0)).alias("sample_index"))
    )
    return persist(ctx, need, f"{p.name}-0")


def _floor(p: Purpose, rows: DataFrame) -> Column:
    """A row's lowest sample index for the purpose (a regenerated CoT's), 0 otherwise."""
    return (F.coalesce(F.col("cot_min_index"), F.lit(0)) if p.name == "cot" else F.lit(0)).alias("_floor")


def _floors(p: Purpose, rows: DataFrame) -> DataFrame | None:
    return rows.select("sample_key", _floor(p, rows)) if p.name == "cot" else None


def _round_requests(ctx: StageContext, need: DataFrame, p: Purpose, round_no: int) -> DataFrame:
    assert p.settings is not None
    base_params = {k: v for k, v in p.params.items() if k != "seed"}
    reqs = build_requests(
        need, purpose=p.name, model=p.settings.model, template=p.template, prompt_version=p.prompt_version,
        params=base_params, fields=["question"], with_image=True, seed_base=p.base_seed,
    )
    return persist(ctx, reqs, f"{p.name}-req-{round_no}")


def _next_need(ctx: StageContext, need: DataFrame, reqs: DataFrame, p: Purpose, sources: DataFrame,
               round_no: int) -> DataFrame:
    """Rows of ``need`` whose answer came back unusable get a new sample index next round. Only this
    round's calls are read: the rows of ``need`` had no valid result before it (and the run's own
    commits are found by their run id, so Delta skips every other run's files)."""
    state = stored_results(ctx, p, sources, asked=reqs)
    return persist(
        ctx,
        need.join(state, "sample_key", "left")
        .where(F.col("_best").isNull() & (F.col("_last.reason") != reasons.code("distill", "llm_error")))
        .select("sample_key", "question", "image_id", F.col("_next_index").alias("sample_index")),
        f"{p.name}-{round_no + 1}",
    )


def ask_teachers(ctx: StageContext, rows: DataFrame, purposes: list[Purpose]) -> None:
    """Ask every purpose's teacher for the rows that need it, the purposes side by side (one call job per
    round, each endpoint with its own window); an unusable answer is asked again with the next sample
    index, up to each purpose's ``max_resamples``."""
    sources = rows.select("sample_key", "source")
    need = {p.name: _first_need(ctx, rows, p) for p in purposes}
    for round_no in range(max((p.max_resamples for p in purposes), default=-1) + 1):
        asking = [p for p in purposes if round_no <= p.max_resamples and need[p.name].limit(1).count() > 0]
        if not asking:
            break
        reqs = {p.name: _round_requests(ctx, need[p.name], p, round_no) for p in asking}
        stats = call_many(ctx.calls(), [Ask(reqs[p.name], p.settings, p.name) for p in asking if p.settings is not None])
        for p in asking:
            st = stats[p.name]
            log.info("distill %s round %d: %d asked, %d ok, %d errors, %.1fs",
                     p.name, round_no, st.requested, st.ok, st.errors, st.seconds)
            need[p.name] = _next_need(ctx, need[p.name], reqs[p.name], p, sources, round_no)


def purpose_results(ctx: StageContext, rows: DataFrame, p: Purpose) -> DataFrame:
    """``rows`` + _<name>_text/_reason/_detail/_key from the stored results (pending_model without an endpoint)."""
    needs_col = F.col(f"_{p.name}_needs")
    if p.settings is None:
        return rows.select(
            "*",
            F.lit(None).cast("string").alias(f"_{p.name}_text"),
            F.when(needs_col, reason("distill", "pending_model")).alias(f"_{p.name}_reason"),
            F.when(needs_col, F.lit(p.missing)).alias(f"_{p.name}_detail"),
            F.lit(None).cast("string").alias(f"_{p.name}_key"),
        )
    stored = stored_results(ctx, p, rows.select("sample_key", "source"), floors=_floors(p, rows))
    joined = rows.join(stored, "sample_key", "left")
    failed = needs_col & F.col("_best").isNull()
    return joined.select(
        *rows.columns,
        F.when(needs_col, F.col("_best._text")).alias(f"_{p.name}_text"),
        F.when(failed, F.coalesce(F.col("_last.reason"), reason("distill", "llm_error"))).alias(f"_{p.name}_reason"),
        F.when(failed, F.col("_last.error")).alias(f"_{p.name}_detail"),
        F.when(needs_col, F.col("_best.request_key")).alias(f"_{p.name}_key"),
    )


def input_table(ctx: StageContext) -> str:
    return next(iter(ctx.input_versions))


def distill(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    source = ctx.read_input(input_table(ctx))
    rows = source.where(F.col("reject_reason").isNull())
    rows_in = rows.count()
    base_columns = [c for c in source.columns if c not in ("reject_reason", "run_id", *NEW_COLUMNS)]
    rows = ctx.to_process(rows.select(*base_columns))  # an incremental run: the stale rows only
    overwrite = bool(cfg.settings.distillation.overwrite)
    cot, caption = _purpose(ctx, "cot"), _purpose(ctx, "caption")
    metrics: dict[str, float] = {}
    rows, metrics["regenerate.rows"] = _with_regenerations(ctx, rows)
    for p in (cot, caption):
        if p.settings is None:
            log.warning("distill: %s — rows that need a %s are rejected pending_model", p.missing, p.name)
        rows = _needs(ctx, rows, p, overwrite)
    rows = persist(ctx, rows, "rows")  # the needs are computed once for the rounds and the results
    ask_teachers(ctx, rows, [p for p in (cot, caption) if p.settings is not None])
    for p in (cot, caption):
        rows = purpose_results(ctx, rows, p)
    out_cols = []
    owner = {c: p for p in (cot, caption) for c in (p.text_col, p.model_col, p.origin_col)}
    for c in base_columns:
        if c not in owner:
            out_cols.append(F.col(c))
            continue
        q = owner[c]
        got = F.col(f"_{q.name}_text").isNotNull()
        value = {
            q.text_col: F.col(f"_{q.name}_text"),
            q.model_col: F.lit(q.settings.model if q.settings else None),
            q.origin_col: F.lit("distilled"),
        }[c]
        out_cols.append(F.when(got, value).otherwise(F.col(c)).alias(c))
    why = F.coalesce(F.col("_cot_reason"), F.col("_caption_reason"))
    detail = F.when(F.col("_cot_reason").isNotNull(), F.col("_cot_detail")).otherwise(F.col("_caption_detail"))
    out = rows.select(
        *out_cols,
        F.when(F.col("_cot_text").isNotNull(), F.lit(cot.prompt_version)).alias("cot_prompt_version"),
        F.col("_cot_key").alias("cot_request_key"),
        F.when(F.col("_caption_text").isNotNull(), F.lit(caption.prompt_version)).alias("caption_prompt_version"),
        F.col("_caption_key").alias("caption_request_key"),
        "cot_regenerations", "cot_min_index",
        why.cast("string").alias("reject_reason"),
        F.when(why.isNotNull(), detail).cast("string").alias("reject_detail"),
        F.lit(ctx.run_id).alias("run_id"),
    )
    for p in (cot, caption):
        metrics[f"{p.name}.endpoint_configured"] = 0.0 if p.settings is None else 1.0
    return StageOutput(rows=with_carried(ctx, out, "distilled"), rows_in=rows_in, metrics=metrics, candidates=ctx.stale())


def input_tables(cfg: Config, published: Callable[[str], int | None]) -> list[str]:
    """``distillation.input_table`` when set; else cleaned once a clean run has published it, else collected
    (a dump distilled without cleaning). Then, where rows are regenerated by policy and a select run has
    published, the selected table (its verdicts)."""
    chosen = cfg.settings.distillation.input_table
    tables = [chosen] if chosen else ["cleaned"] if published("cleaned") is not None else ["collected"]
    if cfg.settings.distillation.cot.regenerate_on and published("selected") is not None:
        tables.append("selected")
    return tables


# ---- regeneration by policy --------------------------------------------------------------------------------

def check_regeneration(cfg: Config) -> None:
    """Every ``distillation.cot.regenerate_on`` entry is a reason select writes (one line naming it otherwise)."""
    known = reasons.codes("select")
    bad = [r for r in cfg.settings.distillation.cot.regenerate_on if r not in known]
    if bad:
        raise ValueError(f"distillation.cot.regenerate_on: {', '.join(bad)} is not a select reason; "
                         f"select writes {', '.join(sorted(known))}")
    if cfg.settings.distillation.cot.max_regenerations < 0:
        raise ValueError("distillation.cot.max_regenerations must be 0 or more")


def regeneration_rows(lh: Lakehouse, cfg: Config, inputs: dict[str, int], distilled: int | None) -> DataFrame | None:
    """(sample_key, _regen_count, _regen_floor) of the rows whose CoT is asked again now: the verdicts of the
    pinned selected version reject the row for a ``regenerate_on`` reason, the row has had fewer than
    ``max_regenerations``, and the verdict is on its current trace (its count is the one distill last wrote, in
    ``distilled``, the published version). The new sample index is one past every index asked for the row,
    so no index is asked twice. None when nothing is regenerated."""
    cot = cfg.settings.distillation.cot
    if not cot.regenerate_on or "selected" not in inputs:
        return None
    check_regeneration(cfg)
    try:
        model = ClientSettings.from_section(cot.client, "distillation.cot.client").model
    except MissingEndpoint:  # nobody to ask: the rows stay as select left them
        return None
    verdicts = lh.read("selected", inputs["selected"])
    had = F.coalesce(F.col("cot_regenerations"), F.lit(0)) if "cot_regenerations" in verdicts.columns else F.lit(0)
    chosen = verdicts.where(F.col("reject_reason").isin(*cot.regenerate_on) & (had < cot.max_regenerations)).select(
        "sample_key", had.alias("_judged"))
    if distilled is not None:
        last = lh.read("distilled", distilled)
        now = F.coalesce(F.col("cot_regenerations"), F.lit(0)) if "cot_regenerations" in last.columns else F.lit(0)
        chosen = chosen.join(last.select("sample_key", now.alias("_now")), "sample_key", "left").where(
            F.col("_judged") == F.coalesce(F.col("_now"), F.lit(0)))
    _, version = load_prompt(cot.prompt)
    asked = lh.read("llm_calls").where((F.col("purpose") == "cot") & (F.col("model") == model)
                                       & (F.col("prompt_version") == version))
    highest = asked.join(chosen.select("sample_key"), "sample_key", "left_semi").groupBy("sample_key").agg(
        (F.max("sample_index") + 1).alias("_next"))
    return chosen.join(highest, "sample_key", "left").select(
        "sample_key", (F.col("_judged") + 1).alias("_regen_count"), F.coalesce(F.col("_next"), F.lit(0)).alias("_regen_floor"))


def regeneration_keys(lh: Lakehouse, cfg: Config, inputs: dict[str, int], previous_version: int | None) -> DataFrame | None:
    """For an incremental run: the keys of rows regenerated now (they are computed whatever their input)."""
    rows = regeneration_rows(lh, cfg, inputs, previous_version)
    return None if rows is None else rows.select("sample_key")


def _with_regenerations(ctx: StageContext, rows: DataFrame) -> tuple[DataFrame, float]:
    """``rows`` with ``cot_regenerations`` and ``cot_min_index``: new for the rows regenerated now, else as the
    last published distilled version has them (for the same model and prompt), else null; and the number of rows
    regenerated now."""
    lh, cfg = ctx.lakehouse, ctx.cfg
    blank_cols = [F.lit(None).cast("int").alias("cot_regenerations"), F.lit(None).cast("int").alias("cot_min_index")]
    if not cfg.settings.distillation.cot.regenerate_on:
        return rows.select("*", *blank_cols), 0.0
    from mfr.runlog import RunLog

    distilled = ctx.plan.previous_version if ctx.incremental and ctx.plan else RunLog(lh).published("distilled")
    regen = regeneration_rows(lh, cfg, ctx.input_versions, distilled)
    if regen is None:
        return rows.select("*", *blank_cols), 0.0
    regen = persist(ctx, regen, "regenerate")
    out = rows.join(regen, "sample_key", "left")
    count, floor = F.col("_regen_count"), F.col("_regen_floor")
    last = lh.read("distilled", distilled) if distilled is not None else None
    if last is not None and "cot_regenerations" in last.columns:
        cot = _purpose(ctx, "cot")
        last = last.where(
            (F.col("cot_model") == F.lit(cot.settings.model if cot.settings else None))
            & (F.col("cot_prompt_version") == cot.prompt_version)).select(
            "sample_key", F.col("cot_regenerations").alias("_had"), F.col("cot_min_index").alias("_had_floor"))
        out = out.join(last, "sample_key", "left")
        count, floor = F.coalesce(count, F.col("_had")), F.coalesce(floor, F.col("_had_floor"))
    out = out.select(*rows.columns, count.cast("int").alias("cot_regenerations"), floor.cast("int").alias("cot_min_index"))
    return out, float(regen.count())
