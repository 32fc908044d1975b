"""Stage 2, clean: questions by exact rules (the model only where rules cannot decide), images only
where they need it, empty answers filled from worked solutions, exact duplicates across sources.

Per row, in this order (the first rejection wins):

1. text rules and routing (``mfr.text.routing.clean_question``) on ``cleaning.input_column`` (blank
   → ``question``); an empty result is ``question_empty``;
2. image cleaning (``mfr.image.clean``) once per distinct image: ``image_missing``,
   ``image_corrupt``, ``image_unsupported``, ``image_too_large``; changed images get a new id;
3. rows routed to the model (translation, instruction, task_check) go to ``cleaning.llm_client``:
   ``unsuitable_task`` when the model says non-answer question; a translation that fails is
   ``llm_error`` (call failed) or ``translation_failed`` (reply unparseable); with no endpoint the rows
   that need translation are ``pending_model`` (other routes keep the rule text, action
   ``unconfirmed_<route>``);
4. an empty ``answer`` with a worked ``original_answer``: by rule, else by the model
   (``answer_extracted``); otherwise the answer stays null;
5. exact duplicates on (image_id, normalised question) across sources: the first sample_key is kept,
   the others are ``duplicate_sample`` with the kept key in ``reject_detail``;
6. benchmark overlap among the rows still kept (``decontamination.benchmarks``, ``mfr.stages.decontaminate``):
   ``benchmark_overlap`` naming the benchmark, the item and the signal; every match goes to ``mfr.contamination``;
7. near duplicates among the rows still kept (``cleaning.near_dup``, ``mfr.stages.near_duplicates``):
   one row per cluster stays, the others are ``near_duplicate``; clusters go to ``mfr.duplicate_clusters``.

``original_question`` keeps the text before cleaning (the dump's original when it has one).
"""

from __future__ import annotations

import logging

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.answers.extract import parse_extraction_reply
from mfr.config import Config
from mfr.llm.calls import ask_many
from mfr.llm.client import ClientSettings
from mfr.llm.requests import Ask, prompt_requests
from mfr.session import session_setting
from mfr.stages.collect import OUTPUT_COLUMNS as COLLECTED_COLUMNS
from mfr.stages.common import StageContext, StageOutput, blank, persist, reason
from mfr.stages.decontaminate import decontam_settings, mark_contaminated
from mfr.stages.near_duplicates import mark_near_duplicates, near_dup_settings
from mfr.text.clean_reply import parse_clean_reply
from mfr.text.clean_rules import normalized_question
from mfr.udfs import clean_image_udf, clean_question_udf, extract_answer_udf, fingerprint_images
from mfr.vectorized import pandas_udf, python_udf

log = logging.getLogger(__name__)

NEW_COLUMNS = ["original_image_id", "language", "clean_actions", "clean_routes", "reject_detail"]
OUTPUT_COLUMNS = [c for c in COLLECTED_COLUMNS if c not in ("reject_reason", "reject_detail", "run_id")] + NEW_COLUMNS + [
    "reject_reason", "run_id",
]
INPUT_COLUMNS = ("question", "original_question")
LLM_ROUTES = ("translation", "instruction", "task_check")

_REPLY_TYPE = T.StructType(
    [
        T.StructField("parsed", T.BooleanType()),
        T.StructField("no_problem", T.BooleanType()),
        T.StructField("unsuitable", T.BooleanType()),
        T.StructField("error_types", T.ArrayType(T.StringType())),
        T.StructField("corrected_text", T.StringType()),
    ]
)


@pandas_udf(_REPLY_TYPE)
def _parse_replies(choices: pd.Series) -> pd.DataFrame:
    out = []
    for ch in choices:
        r = parse_clean_reply(ch[0]["text"] if ch is not None and len(ch) else None)
        out.append((r.parsed, r.no_problem, r.unsuitable, r.error_types, r.corrected_text))
    return pd.DataFrame(out, columns=[f.name for f in _REPLY_TYPE.fields])


@pandas_udf(T.StringType())
def _parse_extractions(choices: pd.Series) -> pd.Series:
    return pd.Series([parse_extraction_reply(ch[0]["text"] if ch is not None and len(ch) else None) for ch in choices],
                     dtype="object")


_dedup_key = python_udf(normalized_question, T.StringType())


def _clean_images(ctx: StageContext, rows: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(per original image_id: new id, reject, actions, detail), (new images to store) and (per kept
    image as cleaned: image_id, phash, dhash; null hashes unless near duplicates are looked for)."""
    cfg, spark = ctx.cfg, ctx.spark
    stored = _stored_images(ctx, rows)
    udf = clean_image_udf(int(cfg.settings.cleaning.max_image_size), int(cfg.settings.cleaning.max_image_pixels),
                          fingerprint=needs_fingerprints(cfg))
    results = stored.select("image_id", udf("bytes").alias("r")).select(
        "image_id",
        F.when(F.col("r.data").isNotNull(), F.sha2("r.data", 256)).otherwise(F.col("image_id")).alias("new_image_id"),
        "r.*",
    )
    # Images decoded per batch, at most. Where the session refuses the setting (Databricks serverless),
    # Spark's own bound holds: 10,000 rows, and never more than one partition.
    with session_setting(spark, "spark.sql.execution.arrow.maxRecordsPerBatch",
                         str(int(cfg.settings.cleaning.image_batch_rows))):
        results = persist(ctx, results, "image-results")  # each image cleaned once
    new_images = (
        results.where(F.col("data").isNotNull())
        .select(F.col("new_image_id").alias("image_id"), F.col("data").alias("bytes"), "width", "height", "format")
        .dropDuplicates(["image_id"])
    )
    mapping = results.select(
        F.col("image_id").alias("_orig_image_id"), "new_image_id", F.col("reject").alias("_image_reject"),
        F.col("actions").alias("_image_actions"), F.col("detail").alias("_image_detail"),
    )
    prints = results.where(F.col("reject").isNull()).select(
        F.col("new_image_id").alias("image_id"), "phash", "dhash").dropDuplicates(["image_id"])
    return mapping, new_images, prints


def needs_fingerprints(cfg: Config) -> bool:
    """Images are fingerprinted where near duplicates or benchmark images are looked for."""
    return bool(cfg.settings.cleaning.near_dup.enabled or cfg.settings.decontamination.benchmarks)


def _stored_images(ctx: StageContext, rows: DataFrame) -> DataFrame:
    """image_id and bytes of the rows' images, each once."""
    ids = rows.where(F.col("image_id").isNotNull()).select("image_id").distinct()
    return ctx.lakehouse.read("images").select("image_id", "bytes").join(ids, "image_id", "left_semi")


def _stored_prints(ctx: StageContext, rows: DataFrame) -> DataFrame:
    """Fingerprints of the rows' images as stored (images not cleaned: ``cleaning.clean_images=false``)."""
    stored = _stored_images(ctx, rows)
    return persist(ctx, stored.select("image_id", fingerprint_images("bytes").alias("p")).select("image_id", "p.*"),
                   "image-prints")


def _requests(ctx: StageContext, df: DataFrame, settings: ClientSettings, purpose: str, prompt: str,
              fields: list[str]) -> Ask:
    """The cleaning model's requests for ``df``'s rows (text only)."""
    sec = ctx.cfg.settings.cleaning
    params = {"temperature": sec.temperature, "max_tokens": sec.max_tokens, "n": 1}
    reqs = prompt_requests(df, purpose=purpose, settings=settings, prompt=prompt, params=params, fields=fields,
                           with_image=False)
    return Ask(reqs, settings, purpose)


def _with_leading_tag(text: F.Column, before: F.Column) -> F.Column:
    """A model rewrite keeps the question's leading <image> tag when the model dropped it."""
    trimmed = F.trim(text)
    return F.when(F.ltrim(before).startswith("<image>") & ~trimmed.startswith("<image>"),
                  F.concat(F.lit("<image>"), trimmed)).otherwise(trimmed)


def clean(ctx: StageContext) -> StageOutput:
    cfg = ctx.cfg
    input_col = cfg.settings.cleaning.input_column
    if input_col not in INPUT_COLUMNS:
        raise ValueError(f"cleaning.input_column must be one of {', '.join(INPUT_COLUMNS)}, got {input_col!r}")
    settings = ClientSettings.optional(cfg.settings.cleaning.llm_client, "cleaning.llm_client")
    source = ctx.read_input("collected")
    rows = source.where(F.col("reject_reason").isNull()).drop("reject_reason", "reject_detail", "run_id")
    rows_in = rows.count()
    rows = ctx.to_process(rows)  # an incremental run: the stale rows only (the steps across rows see all)
    near_dup = cfg.settings.cleaning.near_dup.enabled
    if near_dup:
        near_dup_settings(cfg)  # a bad setting stops the run before any work
    decontaminate = bool(decontam_settings(cfg)[0])
    staged = apply_text_rules(rows, input_col)
    staged, new_images, prints = _with_images(ctx, staged)
    staged = persist(ctx, staged, "clean-staged")  # text and image UDFs run once
    counts = _count_model_work(staged)
    metrics = {k: float(v) for k, v in counts.items() if k.startswith("routed")}
    metrics["clean.llm_rows"] = float(counts["llm_rows"])
    metrics["clean.llm_call_fraction"] = counts["llm_rows"] / max(1, rows_in)
    staged = _ask_cleaning_model(ctx, staged, settings, counts)
    out = decide_rows(staged, rows.columns, model_configured=settings is not None)
    out = out.withColumn("run_id", F.lit(ctx.run_id)).select(*OUTPUT_COLUMNS)
    carried = ctx.carried("cleaned")
    settled = None  # carried rows no step across rows can decide otherwise in this run
    if carried is not None:  # rows kept as they were, before the steps across rows decide them again
        reopened = carried
        if not (near_dup or decontaminate):  # exact duplicates only: rows sharing an image with a stale row
            reopened, settled = _share_an_image(carried, out, ctx)
        out = out.unionByName(undo_across_rows(reopened).select(*OUTPUT_COLUMNS))
    if cfg.settings.cleaning.dedup:
        out = mark_duplicates(out).select(*OUTPUT_COLUMNS)
    if near_dup or decontaminate:
        if prints is None:
            prints = _stored_prints(ctx, out.where(F.col("reject_reason").isNull()))
        else:
            stored = ctx.lakehouse.add_fingerprints(prints.where(F.col("phash").isNotNull()), ctx.run)
            if stored >= 0:
                metrics["near_dup.fingerprints_stored"] = float(stored)
            if carried is not None:  # the carried rows' images were fingerprinted by an earlier run
                known = ctx.lakehouse.read("image_fingerprints").select("image_id", "phash", "dhash")
                images = carried.where(F.col("image_id").isNotNull()).select("image_id").distinct()
                prints = prints.unionByName(known.join(images, "image_id", "left_semi")).dropDuplicates(["image_id"])
    if decontaminate:  # before near duplicates: a cluster never keeps a row that a benchmark holds
        overlap = mark_contaminated(ctx, out, prints)
        out = persist(ctx, overlap.rows, "decontaminated")
        metrics.update(overlap.metrics)
        ctx.lakehouse.append_records(overlap.matches, "contamination", ctx.run)
    if near_dup:
        found = mark_near_duplicates(ctx, out, prints)
        out = found.rows
        metrics.update(found.metrics)
        if found.clusters is not None:
            ctx.lakehouse.append_records(found.clusters, "duplicate_clusters", ctx.run)
    if settled is not None:
        out = out.unionByName(settled.select(*OUTPUT_COLUMNS))
    candidates = None
    if carried is not None:  # the stale rows, and carried rows the steps across rows decided (now or before)
        across = F.col("reject_reason").isin(*ACROSS_ROWS)
        stale = ctx.stale()
        assert stale is not None
        candidates = stale.unionByName(out.where(across).select("sample_key")).unionByName(
            carried.where(across).select("sample_key"))
    return StageOutput(rows=out, rows_in=rows_in, images=new_images, image_origin="clean", metrics=metrics,
                       after_write=_after_write, candidates=candidates)


def apply_text_rules(rows: DataFrame, input_col: str) -> DataFrame:
    """The text rules on the chosen column (``_q``: text, actions, routes, language) and the answer rules
    where the answer is empty but a worked solution exists (``_rule_answer``)."""
    text_in = F.when(~blank(F.col(input_col)), F.col(input_col)).otherwise(F.col("question"))
    before = F.when(~blank(F.col("original_question")), F.col("original_question")).otherwise(F.col("question"))
    need_answer = blank(F.col("answer")) & ~blank(F.col("original_answer"))
    return rows.select(
        *rows.columns,
        text_in.alias("_text_in"),
        before.alias("_before"),
        clean_question_udf(text_in).alias("_q"),
        F.when(need_answer, extract_answer_udf(F.col("original_answer"))).alias("_rule_answer"),
        need_answer.alias("_need_answer"),
    ).select("*", F.col("_q.text").alias("_text"))


def _with_images(ctx: StageContext, staged: DataFrame) -> tuple[DataFrame, DataFrame | None, DataFrame | None]:
    """Image outcome per row (``new_image_id``, ``_image_reject``, ``_image_actions``, ``_image_detail``),
    the new images to store and the kept images' fingerprints; images untouched (None, None) when
    ``cleaning.clean_images`` is off."""
    if not ctx.cfg.settings.cleaning.clean_images:
        return staged.select("*", F.col("image_id").alias("new_image_id"), F.lit(None).cast("string").alias("_image_reject"),
                             F.lit(None).cast("array<string>").alias("_image_actions"),
                             F.lit(None).cast("string").alias("_image_detail")), None, None
    mapping, new_images, prints = _clean_images(ctx, staged)
    staged = staged.join(mapping, staged["image_id"] == mapping["_orig_image_id"], "left")
    image_reject = (
        F.when(F.col("image_id").isNull(), reason("clean", "image_missing"))
        .when(F.col("_orig_image_id").isNull(), reason("clean", "image_missing"))  # id with no stored bytes
        .otherwise(F.col("_image_reject"))
    )
    return staged.withColumn("_image_reject", image_reject).withColumn(
        "_image_detail",
        F.when(F.col("image_id").isNotNull() & F.col("_orig_image_id").isNull(), F.lit("image_id not in images table"))
        .otherwise(F.col("_image_detail")),
    ), new_images, prints


def _alive() -> Column:
    """Rows whose text and image survived the rules (functions: a Column needs a live session)."""
    return ~blank(F.col("_text")) & F.col("_image_reject").isNull()


def _has_route() -> Column:
    return F.size("_q.routes") > 0


def _unanswered() -> Column:
    return _alive() & F.col("_need_answer") & F.col("_rule_answer").isNull()


def _count_model_work(staged: DataFrame) -> dict[str, int]:
    """One pass over the staged rows for every count the stage needs: routed rows (by route) and rows the
    model is (or would be) asked about (routed questions and answers no rule could extract)."""
    counts = staged.agg(
        F.sum((_alive() & _has_route()).cast("int")).alias("routed_rows"),
        F.sum((_alive() & (_has_route() | _unanswered())).cast("int")).alias("llm_rows"),
        F.sum(_unanswered().cast("int")).alias("unanswered"),
        *[F.sum((_alive() & F.array_contains("_q.routes", r)).cast("int")).alias(f"routed.{r}") for r in LLM_ROUTES],
    ).collect()[0].asDict()
    return {k: int(v or 0) for k, v in counts.items()}


def _ask_cleaning_model(ctx: StageContext, staged: DataFrame, settings: ClientSettings | None,
                        counts: dict[str, int]) -> DataFrame:
    """``_reply`` (the parsed cleaning reply of routed rows) and ``_model_answer`` (answers extracted by
    the model); null where no model is configured or nothing needed it."""
    n_routed, sec = counts["routed_rows"], ctx.cfg.settings.cleaning
    if n_routed and settings is None:
        log.warning("clean: %d rows need the cleaning model; set cleaning.llm_client.api_base and .model", n_routed)
    asks = []
    if settings is not None and n_routed:
        routed = staged.where(_alive() & _has_route()).select("sample_key", "image_id", F.col("_text").alias("question"))
        asks.append(_requests(ctx, routed, settings, "clean", sec.prompt, ["question"]))
    if settings is not None and counts["unanswered"]:
        todo = staged.where(_unanswered()).select("sample_key", "image_id", F.col("_text").alias("question"),
                                                F.col("original_answer").alias("solution"))
        asks.append(_requests(ctx, todo, settings, "answer_extraction", sec.answer_prompt, ["question", "solution"]))
    # both purposes in one call job: neither waits for the other's slowest call
    replies = ask_many(ctx.calls(), asks) if asks else {}
    if "clean" in replies:
        staged = staged.join(replies["clean"].select("sample_key", _parse_replies("choices").alias("_reply")),
                             "sample_key", "left")
    else:
        staged = staged.withColumn("_reply", F.lit(None).cast(_REPLY_TYPE))
    if "answer_extraction" in replies:
        return staged.join(replies["answer_extraction"].select(
            "sample_key", _parse_extractions("choices").alias("_model_answer")), "sample_key", "left")
    return staged.withColumn("_model_answer", F.lit(None).cast("string"))


def decide_rows(staged: DataFrame, columns: list[str], model_configured: bool) -> DataFrame:
    """The cleaned rows: question, answer and image after rules and model, the actions taken, and
    ``reject_reason`` (empty question, then the image, then the model's verdict) with its detail."""
    routes = F.col("_q.routes")
    has_reply = F.col("_reply").isNotNull()
    translation = F.array_contains(routes, "translation")
    unparsed = has_reply & ~F.col("_reply.parsed")
    no_model = F.lit(not model_configured)
    llm_reason = (
        F.when(F.size(routes) == 0, F.lit(None))
        .when(no_model & translation, reason("clean", "pending_model"))
        .when(no_model, F.lit(None))
        .when(~has_reply & translation, reason("clean", "llm_error"))
        .when(has_reply & F.col("_reply.unsuitable"), reason("clean", "unsuitable_task"))
        .when(unparsed & translation, reason("clean", "translation_failed"))
    )
    corrected = has_reply & F.col("_reply.parsed") & F.col("_reply.corrected_text").isNotNull() & ~blank(F.col("_reply.corrected_text"))
    question = F.when(corrected, _with_leading_tag(F.col("_reply.corrected_text"), F.col("_text"))).otherwise(F.col("_text"))
    llm_actions = (
        F.when(F.size(routes) == 0, F.array())
        .when(no_model, F.transform(routes, lambda r: F.concat(F.lit("unconfirmed_"), r)))
        .when(~has_reply, F.array(F.lit("llm_error")))
        .when(unparsed, F.array(F.lit("llm_unparseable")))
        .when(F.col("_reply.no_problem"), F.array(F.lit("llm_no_problem")))
        .otherwise(F.transform(F.col("_reply.error_types"), lambda t: F.concat(F.lit("llm_"), F.regexp_replace(t, "[ -]", "_"))))
    )
    answer = F.coalesce(F.when(~blank(F.col("answer")), F.col("answer")), F.col("_rule_answer"), F.col("_model_answer"))
    answer_actions = (
        F.when(F.col("_rule_answer").isNotNull(), F.array(F.lit("answer_extracted")))
        .when(F.col("_need_answer") & F.col("_model_answer").isNotNull(), F.array(F.lit("answer_extracted"), F.lit("answer_by_model")))
        .when(F.col("_need_answer"), F.array(F.lit("answer_unextracted")))
        .otherwise(F.array())
    )
    why = F.coalesce(
        F.when(blank(F.col("_text")), reason("clean", "question_empty")),
        F.col("_image_reject"),
        llm_reason,
    )
    detail = (
        F.when(F.col("_image_reject").isNotNull(), F.col("_image_detail"))
        .when(why == "pending_model", F.lit("needs translation: set cleaning.llm_client.api_base and cleaning.llm_client.model"))
    )
    return staged.select(
        *[c for c in columns if c not in ("question", "original_question", "answer", "image_id")],
        question.alias("question"),
        F.col("_before").alias("original_question"),
        answer.alias("answer"),
        F.col("new_image_id").alias("image_id"),
        F.col("image_id").alias("original_image_id"),
        F.col("_q.language").alias("language"),
        F.concat(F.col("_q.actions"), F.coalesce(F.col("_image_actions"), F.array()), llm_actions, answer_actions).alias("clean_actions"),
        routes.alias("clean_routes"),
        detail.cast("string").alias("reject_detail"),
        why.cast("string").alias("reject_reason"),
    )


def _share_an_image(carried: DataFrame, computed: DataFrame, ctx: StageContext) -> tuple[DataFrame, DataFrame]:
    """(carried rows whose exact-duplicate decision may change, the others): an exact duplicate has the same
    image (or none), so only carried rows sharing an image with a stale row, as computed now or as the last
    run left it, can gain or lose one."""
    stale = ctx.stale()
    assert stale is not None and ctx.plan is not None
    before = ctx.lakehouse.read("cleaned", ctx.plan.previous_version).join(stale, "sample_key", "left_semi")
    images = computed.select("image_id").unionByName(before.select("image_id")).distinct().withColumnRenamed(
        "image_id", "_shared")
    shared = carried["image_id"].eqNullSafe(images["_shared"])
    return carried.join(images, shared, "left_semi"), carried.join(images, shared, "left_anti")


# codes decided by comparing rows with each other (or with benchmarks) after each row's own rules
ACROSS_ROWS = ("duplicate_sample", "benchmark_overlap", "near_duplicate")


def undo_across_rows(rows: DataFrame) -> DataFrame:
    """Rows of an earlier output as their own rules left them: a code decided across rows is cleared (with
    its detail), so that the steps across rows decide it again with the new rows beside them."""
    across = F.col("reject_reason").isin(*ACROSS_ROWS)
    return rows.withColumn("reject_detail", F.when(across, F.lit(None).cast("string")).otherwise(F.col("reject_detail"))) \
        .withColumn("reject_reason", F.when(across, F.lit(None).cast("string")).otherwise(F.col("reject_reason")))


def mark_duplicates(df: DataFrame) -> DataFrame:
    """Exact duplicates across sources among kept rows: the smallest sample_key stays."""
    key = F.concat_ws("\u0001", F.coalesce(F.col("image_id"), F.lit("")), _dedup_key("question"))
    kept = df.where(F.col("reject_reason").isNull()).withColumn("_k", key)
    w = Window.partitionBy("_k").orderBy("sample_key")
    ranked = kept.withColumn("_first", F.first("sample_key").over(w)).withColumn("_rank", F.row_number().over(w))
    dup = F.col("_rank") > 1
    marked = ranked.select(
        *[c for c in df.columns if c not in ("reject_reason", "reject_detail")],
        F.when(dup, F.concat(F.lit("duplicate of "), F.col("_first"))).otherwise(F.col("reject_detail")).alias("reject_detail"),
        F.when(dup, reason("clean", "duplicate_sample")).alias("reject_reason"),
    )
    return marked.unionByName(df.where(F.col("reject_reason").isNotNull()))


def _after_write(spark, lh, version: int) -> dict[str, float]:
    df = lh.read("cleaned", version)
    row = df.agg(
        F.count("*").alias("rows"),
        F.sum((F.col("original_image_id") != F.col("image_id")).cast("int")).alias("images_changed"),
        F.sum(F.array_contains("clean_actions", "answer_extracted").cast("int")).alias("answers_extracted"),
        F.sum((F.size("clean_actions") > 0).cast("int")).alias("rows_changed"),
    ).collect()[0]
    return {
        "clean.images_changed": float(row["images_changed"] or 0),
        "clean.answers_extracted": float(row["answers_extracted"] or 0),
        "clean.rows_with_actions": float(row["rows_changed"] or 0),
    }
