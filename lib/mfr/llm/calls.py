"""Model calls from Spark tasks, each stored once.

``call_many(ctx, asks)`` takes DataFrames of requests (one row per call, with a deterministic
``request_key``), one per purpose with its client, and makes sure each has a stored success, asking only for
keys that have none. ``ctx`` is a ``CallContext`` (``mfr.llm.context``): the call layer knows nothing of
stages, runs or the lakehouse beyond it.

1. journals left by a killed run are stored first (their finished calls are not asked again: ``store``);
2. pending requests of every purpose (anti-join on successful ``request_key``) are staged once as
   parquet with the image bytes they need, one file per call task, purposes interleaved;
3. one Spark job makes all the calls (``task``): each task keeps a sliding window per endpoint (its
   ``max_concurrency`` × replicas split across the tasks calling at once: ``planning``) and journals each
   result as it lands; there is no job boundary to wait on until the last request is sent;
4. meanwhile a driver thread (``store.CallStore``) reads the journals, prints progress and commits finished
   calls every ``llm.shard_size`` calls, ``llm.commit_mb`` of text or ``llm.commit_interval_s``, each batch
   one idempotent commit. A retried task skips the keys its earlier attempts journaled, and the driver keeps
   one success per key, so a retry never asks or stores twice; a killed driver loses only the calls in
   flight (the next run stores the journals first).

Why the driver stores the results (and not the call job's own output): a Delta commit lands only when
its job ends, so results written by the call job would wait for its slowest task; journals committed in
the background keep the stored calls current and the journals small whatever the job's length. The commit
jobs need a free task slot, hence ``call_tasks`` leaves one.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mfr.llm import task as call_task
from mfr.llm.client import ClientSettings
from mfr.llm.context import CallContext
from mfr.llm.planning import call_tasks, in_flight, parallelism, windows
from mfr.llm.requests import REQUEST_COLUMNS, Ask
from mfr.llm.store import CallStore, recover_journals
from mfr.session import job_description
from mfr.storage import join, spark_path

log = logging.getLogger(__name__)


@dataclass
class CallStats:
    requested: int = 0
    already_done: int = 0
    recovered: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0


def call_many(ctx: CallContext, asks: list[Ask]) -> dict[str, CallStats]:
    """Make sure every request of every ask has a stored result; ask only for keys without a stored success.

    The purposes run side by side in one Spark job: each task interleaves the requests of all of them and
    keeps one window per endpoint (clients with the same endpoints share it), so no endpoint waits for
    another purpose or a job boundary. Results are stored by the driver while calls continue. Returns
    the stats per ask's label.
    """
    spark = ctx.spark
    labels = [a.label for a in asks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"call_many needs one ask per purpose, got {labels}")
    start = time.monotonic()
    out = {a.label: CallStats() for a in asks}
    recovered = recover_journals(ctx, "+".join(labels))
    if asks:
        out[asks[0].label].recovered = recovered
    done = ctx.stored().where(F.col("status") == "ok").select("request_key").distinct()
    pending = None
    for i, a in enumerate(asks):
        mine = (a.requests.select(*REQUEST_COLUMNS).dropDuplicates(["request_key"])
                .join(done, "request_key", "left_anti").withColumn("_client", F.lit(i)))
        pending = mine if pending is None else pending.unionByName(mine)
    if pending is None:
        return out
    call_id = f"{'+'.join(labels).replace('/', '_')}-{uuid.uuid4().hex[:8]}"  # one per call: rounds never share commits
    staged = spark_path(join(ctx.staging_root, "requests", ctx.run_id, call_id))
    clients = [a.settings for a in asks]
    slots = parallelism(spark, None)
    tasks = call_tasks(spark, ctx.settings.tasks, in_flight(clients), slots)
    if ctx.images is not None:
        images = ctx.images().select("image_id", F.col("bytes").alias("image_bytes"))
        with_images = pending.join(images, "image_id", "left")
    else:  # no images to send: a request that needs one fails as bad input, the others go
        with_images = pending.withColumn("image_bytes", F.lit(None).cast("binary"))
    # Staged once with their image bytes, in one file per call task, purposes interleaved (ordered by a
    # hash of the key) so each task's endpoints all have work from its first row to its last.
    hashed = with_images.withColumn("_h", F.xxhash64("request_key"))
    hashed.repartition(tasks, "_h").sortWithinPartitions("_h").drop("_h").write.mode("overwrite").parquet(staged)
    staged_df = spark.read.parquet(staged)
    counts = {int(r["_client"]): int(r["count"]) for r in staged_df.groupBy("_client").count().collect()}
    n = sum(counts.values())
    for i, a in enumerate(asks):
        out[a.label].requested = out[a.label].sent = counts.get(i, 0)
    if n == 0:
        ctx.storage.delete(staged)
        return out
    window, concurrent = windows(clients, tasks, slots)
    journal_root = join(ctx.staging_root, "journal")
    folder = join(journal_root, ctx.run_id, call_id)
    llm = ctx.settings
    store = CallStore(ctx, folder, n, "+".join(labels), f"{ctx.run_id}-{call_id}", max(1, int(llm.shard_size)),
                      float(llm.commit_interval_s), float(llm.progress_interval_s), int(float(llm.commit_mb) * 2**20))
    store.start()
    failed = False
    try:
        with job_description(spark, f"mfr {ctx.label}: {' + '.join(labels)} calls"):
            staged_df.coalesce(tasks).mapInPandas(
                call_task.task_fn(clients, window, concurrent, ctx.run_id, journal_root, call_id, ctx.storage),
                call_task.TASK_COUNTS,
            ).collect()
    except BaseException:
        failed = True
        raise
    finally:
        try:
            store.finish()
        except Exception as exc:
            if not failed:
                raise
            # the call job's own error is the one to see; what was not stored stays in the journals
            log.error("%s: storing finished calls after the failed call job also failed: %s", store.label, exc)
    ctx.storage.delete(staged)
    for a in asks:
        out[a.label].ok, out[a.label].errors = store.ok[a.label], store.errors[a.label]
        out[a.label].seconds = time.monotonic() - start
    return out


def call_models(ctx: CallContext, requests: DataFrame, settings: ClientSettings, label: str) -> CallStats:
    """``call_many`` for one purpose."""
    return call_many(ctx, [Ask(requests, settings, label)])[label]


def ask_many(ctx: CallContext, asks: list[Ask]) -> dict[str, DataFrame]:
    """Make sure every request of every ask has a result (the purposes side by side, ``call_many``), then
    return per label the (sample_key, choices) of the successes.

    Requests are staged first (``ctx.stage_frame``, when the context has one) so the rows asked and the rows
    joined back are the same ones.
    """
    tag = uuid.uuid4().hex[:6]  # a purpose may be asked again in the same run
    stage = ctx.stage_frame or (lambda df, name: df)
    staged = [Ask(stage(a.requests, f"{a.label}-requests-{tag}"), a.settings, a.label) for a in asks]
    stats = call_many(ctx, staged)
    out = {}
    for a in staged:
        st = stats[a.label]
        log.info("%s: %d asked, %d ok, %d errors", a.label, st.requested, st.ok, st.errors)
        ok = ctx.stored().where((F.col("purpose") == a.label) & (F.col("status") == "ok"))
        ok = ok.select("request_key", "choices").dropDuplicates(["request_key"])
        out[a.label] = a.requests.select("request_key", "sample_key").join(ok, "request_key").select("sample_key", "choices")
    return out
