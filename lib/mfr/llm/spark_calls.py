"""Model calls from Spark tasks, stored once in ``<schema>.llm_calls``.

``call_models`` takes a DataFrame of requests (one row per call, with a deterministic ``request_key``)
and makes sure each has a stored success, asking only for keys that have none:

1. journals left by a killed run are stored first (their finished calls are not asked again);
2. pending requests (anti-join on successful ``request_key``) are staged once as parquet, with the
   image bytes they need, split into shards;
3. each shard is one Spark job: ``mapInPandas`` keeps a sliding window of requests in flight per task
   (the endpoint's ``max_concurrency`` × replicas split across the tasks running at once), journals each
   result as it lands, and the shard's results are appended as one idempotent Delta commit
   (``txnAppId``/``txnVersion``), so task retries or a retried commit never store a result twice;
4. a driver thread prints progress from the journals every few seconds.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.lakehouse import LLM_CALLS_SCHEMA
from mfr.llm.client import CallResult, ChatRequest, ClientSettings
from mfr.llm.journal import JournalWriter, Progress, journal_prefix, read_records
from mfr.session import job_description
from mfr.storage import Storage, join, relative
from mfr.vectorized import pandas_udf

if TYPE_CHECKING:  # pragma: no cover
    from mfr.stages.common import StageContext

log = logging.getLogger(__name__)

# Columns of a request row handed to call_models.
REQUEST_COLUMNS = [
    "request_key", "sample_key", "purpose", "model", "prompt_version", "sample_index",
    "messages_json", "params_json", "image_id",
]
IMAGE_PLACEHOLDER = {"type": "image_url", "image_url": {"url": "$IMAGE"}}
_RESULT_FIELDS = [f.name for f in LLM_CALLS_SCHEMA.fields]


@dataclass
class CallStats:
    requested: int = 0
    already_done: int = 0
    recovered: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0


_BUILT = T.StructType(
    [T.StructField("request_key", T.StringType()), T.StructField("messages_json", T.StringType()),
     T.StructField("params_json", T.StringType())]
)


def build_requests(
    df: DataFrame,
    *,
    purpose: str,
    model: str,
    template: str,
    prompt_version: str,
    params: dict[str, Any],
    fields: list[str],
    with_image: bool,
    seed_base: int | None = None,
) -> DataFrame:
    """One chat request per row of ``df`` (sample_key, image_id, sample_index?, ``fields``).

    ``{field}`` placeholders of ``template`` are filled from the row (``<image>`` tags dropped: the image
    travels as its own message part). With ``seed_base`` the request's seed is seed_base + sample_index,
    so a resample is a new request with its own key.
    """
    from mfr.llm.keys import request_key

    index_col = F.col("sample_index") if "sample_index" in df.columns else F.lit(0)

    @pandas_udf(_BUILT)
    def build(values: pd.DataFrame) -> pd.DataFrame:
        out = []
        for row in values.to_dict("records"):
            text = template
            for f in fields:
                text = text.replace("{" + f + "}", str(row[f] or "").replace("<image>", "").strip())
            content = ([IMAGE_PLACEHOLDER] if with_image and row["image_id"] else []) + [{"type": "text", "text": text}]
            index = int(row["_index"])
            p = dict(params) if seed_base is None else {**params, "seed": seed_base + index}
            key = request_key(row["sample_key"], purpose, prompt_version, model, p, index)
            out.append((key, json.dumps([{"role": "user", "content": content}], ensure_ascii=False), json.dumps(p)))
        return pd.DataFrame(out, columns=["request_key", "messages_json", "params_json"])

    built = df.withColumn("_r", build(F.struct("sample_key", "image_id", index_col.alias("_index"), *fields)))
    return built.select(
        F.col("_r.request_key").alias("request_key"), "sample_key", F.lit(purpose).alias("purpose"),
        F.lit(model).alias("model"), F.lit(prompt_version).alias("prompt_version"),
        index_col.cast("int").alias("sample_index"), F.col("_r.messages_json").alias("messages_json"),
        F.col("_r.params_json").alias("params_json"), "image_id",
    )


def persist(ctx: StageContext, df: DataFrame, name: str) -> DataFrame:
    """Write an intermediate to staging and read it back: computed once, lineage cut."""
    with job_description(ctx.spark, f"mfr {ctx.run.stage}: {name}"):
        return ctx.lakehouse.stage(df, ctx.run_id, name)


def parallelism(spark: SparkSession, configured: int | None) -> int:
    """Spark tasks that run at once, from config and not from the context (Spark Connect has none):
    ``llm.tasks``, else ``spark.default.parallelism``, else a local master's cores, else the shuffle partitions."""
    if configured:
        return int(configured)
    value = spark.conf.get("spark.default.parallelism", None)
    if value:
        return int(value)
    master = spark.conf.get("spark.master", "") or ""
    if master.startswith("local"):
        inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
        if master.startswith("local-cluster"):  # [executors, cores each, memory]
            executors, cores = inside.split(",")[:2]
            return int(executors) * int(cores)
        return (os.cpu_count() or 1) if inside.startswith("*") else int(inside.split(",")[0])
    return int(spark.conf.get("spark.sql.shuffle.partitions", "200") or 200)


def _record(result: CallResult, req_row: dict[str, Any], run_id: str) -> dict[str, Any]:
    return {
        "request_key": result.request_key,
        "sample_key": req_row["sample_key"],
        "purpose": req_row["purpose"],
        "model": req_row["model"],
        "prompt_version": req_row["prompt_version"],
        "sample_index": int(req_row["sample_index"]),
        "status": result.status,
        "attempts": result.attempts,
        "finish_reason": result.finish_reason,
        "choices": result.choices,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "latency_s": result.latency_s,
        "endpoint": result.endpoint,
        "error_kind": result.error_kind,
        "error": result.error,
        "run_id": run_id,
        "created_at": pd.Timestamp.utcnow().tz_localize(None),
        "errors_by_kind": result.errors_by_kind,
    }


def _messages(messages_json: str, image: bytes | None) -> list[dict[str, Any]]:
    """Messages with the image placeholder replaced by the image's data URL."""
    from mfr.llm.images import image_data_url

    messages = json.loads(messages_json)
    url = None
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url" and part["image_url"]["url"] == "$IMAGE":
                    if image is None:
                        raise ValueError("request needs an image but none is stored")
                    url = url or image_data_url(image)
                    part["image_url"]["url"] = url
    return messages


def _task_fn(settings: ClientSettings, window: int, share: int, run_id: str, journal_root: str, shard: int,
             storage: Storage):
    """The mapInPandas body: a sliding window of calls over this task's requests (``share``: tasks calling
    at once, each with its share of the rate caps)."""

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        from mfr.llm.client import OpenAIClient
        from mfr.llm.window import sliding_window

        tc = TaskContext.get()
        part, attempt = (tc.partitionId(), tc.attemptNumber()) if tc else (0, 0)
        journal = JournalWriter(storage, journal_prefix(journal_root, run_id, shard, part, attempt))
        client = OpenAIClient(settings, pool=window, share=share)
        rows_by_key: dict[str, dict[str, Any]] = {}

        def requests() -> Iterator[ChatRequest | CallResult]:
            for batch in batches:
                for row in cast(list[dict[str, Any]], batch.to_dict("records")):
                    rows_by_key[row["request_key"]] = row
                    try:
                        messages = _messages(row["messages_json"], row.get("image_bytes"))
                    except Exception as exc:
                        yield CallResult(row["request_key"], "error", error_kind="bad_input", error=f"{type(exc).__name__}: {exc}")
                        continue
                    yield ChatRequest(row["request_key"], messages, json.loads(row["params_json"]))

        def call(item: ChatRequest | CallResult) -> CallResult:
            return item if isinstance(item, CallResult) else client.call(item)

        out: list[dict[str, Any]] = []
        try:
            for result in sliding_window(call, requests(), window):
                rec = _record(result, rows_by_key.pop(result.request_key), run_id)
                journal.write(rec)
                rec.pop("errors_by_kind")
                out.append(rec)
                if len(out) >= 256:
                    yield pd.DataFrame(out, columns=_RESULT_FIELDS)
                    out = []
            if out:
                yield pd.DataFrame(out, columns=_RESULT_FIELDS)
        finally:
            journal.close()
            client.close()

    return run


class _ProgressPrinter(threading.Thread):
    def __init__(self, storage: Storage, folder: str, total: int, label: str, interval: float):
        super().__init__(daemon=True)
        self.progress = Progress(storage, folder)
        self.total, self.label, self.interval = total, label, interval
        self.stop = threading.Event()
        self.start_time = time.monotonic()

    def line(self) -> str:
        p = self.progress
        p.poll()
        elapsed = max(time.monotonic() - self.start_time, 1e-6)
        rate = p.done / elapsed
        eta = (self.total - p.done) / rate if rate > 0 else float("inf")
        errors = " ".join(f"{k}={v}" for k, v in sorted(p.errors.items())) or "none"
        return (
            f"{self.label}: {p.done}/{self.total} calls ({100.0 * p.done / max(self.total, 1):.1f}%), "
            f"{rate:.1f} req/s, {p.tokens / elapsed / 1000:.1f}k tok/s, retried errors: {errors}, "
            f"ETA {eta:.0f}s" if math.isfinite(eta) else f"{self.label}: {p.done}/{self.total} calls, starting"
        )

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            log.info(self.line())


def recover_journals(ctx, label: str = "llm") -> int:
    """Store finished calls that a killed run journaled but never committed; returns how many."""
    from mfr.runlog import RunLog

    lh = ctx.lakehouse
    storage = lh.storage
    root = join(lh.staging_root, "journal")
    files = storage.list_files(root, ".jsonl")
    if not files:
        return 0
    live = RunLog(lh).live_run_ids() - {ctx.run_id}  # another stage's run in progress keeps its journals
    files = [f for f in files if relative(root, f).split("/", 1)[0] not in live]
    records = [r for f in files for r in read_records(storage, f)]
    stored = 0
    if records:
        best: dict[str, dict[str, Any]] = {}
        for r in records:  # one result per key, a success over an error
            if r["request_key"] not in best or (r["status"] == "ok" and best[r["request_key"]]["status"] != "ok"):
                best[r["request_key"]] = r
        rows = []
        for r in best.values():
            r = {k: r.get(k) for k in _RESULT_FIELDS}
            r["created_at"] = pd.Timestamp(r["created_at"]).to_pydatetime() if r["created_at"] else None
            rows.append(r)
        df = ctx.spark.createDataFrame(pd.DataFrame(rows, columns=_RESULT_FIELDS), LLM_CALLS_SCHEMA)
        done = lh.read("llm_calls").where(F.col("status") == "ok").select("request_key")
        fresh = df.join(done, "request_key", "left_anti")
        stored = fresh.count()
        if stored:
            app = f"recover-{ctx.run_id}-{label}"
            lh.append_once(fresh.select(*_RESULT_FIELDS), "llm_calls", ctx.run, app, 0)
            log.info("%s: stored %d finished calls from the journals of an interrupted run", label, stored)
    for f in files:
        storage.delete(f)
    return stored


def call_models(ctx, requests: DataFrame, settings: ClientSettings, label: str) -> CallStats:
    """Make sure every request has a stored result; ask only for keys without a stored success.

    ``label`` is the requests' purpose (cot, caption, …): it names the staging folder, the progress
    line and the idempotent commits of this purpose within the run.
    """
    spark, lh, cfg = ctx.spark, ctx.lakehouse, ctx.cfg
    start = time.monotonic()
    stats = CallStats()
    stats.recovered = recover_journals(ctx, label)
    requests = requests.select(*REQUEST_COLUMNS).dropDuplicates(["request_key"])
    done = lh.read("llm_calls").where(F.col("status") == "ok").select("request_key").distinct()
    pending = requests.join(done, "request_key", "left_anti")
    root = ctx.lakehouse.staging_root
    call_id = f"{label.replace('/', '_')}-{uuid.uuid4().hex[:8]}"  # one per call: rounds never share commits
    staged = join(root, "requests", ctx.run_id, call_id)
    shard_size = max(1, int(cfg.settings.llm.shard_size))
    images = lh.read("images").select("image_id", F.col("bytes").alias("image_bytes"))
    with_images = pending.join(images, "image_id", "left")
    # Stage the pending requests once (with their image bytes) so shards never recompute the plan.
    with_images.write.mode("overwrite").parquet(staged)
    staged_df = spark.read.parquet(staged)
    n = staged_df.count()
    stats.requested = n
    if n == 0:
        lh.storage.delete(staged)
        stats.seconds = time.monotonic() - start
        return stats
    shards = math.ceil(n / shard_size)
    tasks = parallelism(spark, cfg.settings.llm.tasks)
    journal_root = join(root, "journal")
    run_journals = join(journal_root, ctx.run_id)
    progress = _ProgressPrinter(lh.storage, run_journals, n, label, float(cfg.settings.llm.progress_interval_s))
    progress.start()
    try:
        keyed = staged_df.withColumn("_shard", F.abs(F.xxhash64("request_key")) % shards)
        for shard in range(shards):
            part = keyed.where(F.col("_shard") == shard).drop("_shard")
            n_tasks = max(1, min(tasks, shard_size))
            concurrent = max(1, min(n_tasks, parallelism(spark, None)))
            window = max(1, (settings.max_concurrency * len(settings.api_bases)) // concurrent)
            results = part.repartition(n_tasks).mapInPandas(
                _task_fn(settings, window, concurrent, ctx.run_id, journal_root, shard, lh.storage), LLM_CALLS_SCHEMA
            )
            lh.append_once(results, "llm_calls", ctx.run, f"{ctx.run_id}-{call_id}", shard)
            progress.progress.poll()  # count the shard before its journals go
            for f in lh.storage.list_files(run_journals, ".jsonl"):
                if f.rsplit("/", 1)[-1].startswith(f"shard-{shard}-part-"):
                    lh.storage.delete(f)  # committed: the journal is no longer needed
    finally:
        progress.stop.set()
        log.info(progress.line())
    # count this call's results only (a run may call several rounds of the same purpose)
    this_call = lh.read("llm_calls").where(F.col("run_id") == ctx.run_id).join(
        staged_df.select("request_key"), "request_key", "left_semi"
    )
    counts = {r["status"]: r["count"] for r in this_call.groupBy("status").count().collect()}
    lh.storage.delete(staged)
    stats.ok, stats.errors = int(counts.get("ok", 0)), int(counts.get("error", 0))
    stats.sent = n
    stats.seconds = time.monotonic() - start
    return stats


def ask(ctx, reqs: DataFrame, settings: ClientSettings, purpose: str) -> DataFrame:
    """Make sure every request has a result, then return (sample_key, choices) of the successes.

    Requests are staged first so the rows asked and the rows joined back are the same ones.
    """
    reqs = persist(ctx, reqs, f"{purpose}-requests")
    stats = call_models(ctx, reqs, settings, purpose)
    log.info("%s: %d asked, %d ok, %d errors", purpose, stats.requested, stats.ok, stats.errors)
    ok = ctx.lakehouse.read("llm_calls").where((F.col("purpose") == purpose) & (F.col("status") == "ok"))
    ok = ok.select("request_key", "choices").dropDuplicates(["request_key"])
    return reqs.select("request_key", "sample_key").join(ok, "request_key").select("sample_key", "choices")


def ask_prompt(ctx, df: DataFrame, *, purpose: str, settings: ClientSettings, prompt: str,
               params: dict[str, Any], fields: list[str], with_image: bool) -> DataFrame:
    """One request per row of ``df`` with the prompt file ``prompt`` (its ``{field}`` slots filled),
    asked through ``ask``: (sample_key, choices) of the successes."""
    from mfr.prompts import load_prompt

    template, version = load_prompt(prompt)
    reqs = build_requests(df, purpose=purpose, model=settings.model, template=template, prompt_version=version,
                          params=params, fields=fields, with_image=with_image)
    return ask(ctx, reqs, settings, purpose)
