"""Model calls from Spark tasks, stored once in ``<schema>.llm_calls``.

``call_many`` takes DataFrames of requests (one row per call, with a deterministic ``request_key``), one
per purpose with its client, and makes sure each has a stored success, asking only for keys that have none:

1. journals left by a killed run are stored first (their finished calls are not asked again);
2. pending requests of every purpose (anti-join on successful ``request_key``) are staged once as
   parquet with the image bytes they need, one file per call task, purposes interleaved;
3. one Spark job makes all the calls: each task keeps a sliding window per endpoint (its
   ``max_concurrency`` × replicas split across the tasks calling at once) and journals each result as it
   lands; there is no job boundary to wait on until the last request is sent;
4. meanwhile a driver thread reads the journals, prints progress and stores finished calls in
   ``llm_calls`` every ``llm.shard_size`` calls, ``llm.commit_mb`` of text or ``llm.commit_interval_s``, each batch one idempotent
   Delta commit (``txnAppId``/``txnVersion``). A retried task skips the keys its earlier attempts
   journaled, and the driver keeps one success per key, so a retry never asks or stores twice; a killed
   driver loses only the calls in flight (the next run stores the journals first).

Why the driver stores the results (and not the call job's own output): a Delta commit lands only when
its job ends, so results written by the call job would wait for its slowest task; journals committed in
the background keep ``llm_calls`` current and the journals small whatever the job's length. The commit
jobs need a free task slot, hence ``call_tasks`` leaves one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter
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
from mfr.llm.keys import KeySet
from mfr.session import conf_value, job_description
from mfr.storage import Storage, join, relative, spark_path
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
    value = _count(conf_value(spark, "spark.default.parallelism"))
    if value:
        return value
    master = conf_value(spark, "spark.master") or ""
    if master.startswith("local"):
        inside = master[master.find("[") + 1:master.find("]")] if "[" in master else "1"
        if master.startswith("local-cluster"):  # [executors, cores each, memory]
            executors, cores = inside.split(",")[:2]
            return int(executors) * int(cores)
        # local[N], local[*], local[N, F] (F: task retries); Databricks' single node says local[*, 4]
        return (os.cpu_count() or 1) if inside.startswith("*") else int(inside.split(",")[0])
    # Databricks takes "auto" here (AQE picks the count): no number to go by, so Spark's default
    return _count(conf_value(spark, "spark.sql.shuffle.partitions")) or 200


def _count(value: str | None) -> int | None:
    """A positive whole number from a setting's text, else None."""
    if value is None:
        return None
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if n > 0 else None


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


def _task_fn(clients: list[ClientSettings], windows: dict[int, int], share: int, run_id: str, journal_root: str,
             call_id: str, storage: Storage):
    """The mapInPandas body: one sliding window per endpoint over this task's requests of every purpose
    (``_client``: the index of the request's client; ``windows``: endpoint group -> window; ``share``:
    tasks calling at once, each with its share of the rate caps). Results go to the journal only (the
    driver stores them while calls continue); the task yields one row of counts."""
    groups = _endpoint_groups(clients)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        from mfr.llm.client import OpenAIClient
        from mfr.llm.journal import earlier_attempts
        from mfr.llm.window import grouped_windows

        tc = TaskContext.get()
        part, attempt = (tc.partitionId(), tc.attemptNumber()) if tc else (0, 0)
        # a retried task leaves what its earlier attempts journaled to the driver (never asked twice)
        skip = earlier_attempts(storage, journal_root, run_id, call_id, part, attempt) if attempt else set()
        journal = JournalWriter(storage, journal_prefix(journal_root, run_id, call_id, part, attempt))
        made = [OpenAIClient(s, pool=windows[groups[i]], share=share) for i, s in enumerate(clients)]
        rows_by_key: dict[str, dict[str, Any]] = {}
        counts = {"asked": 0, "ok": 0, "skipped": 0}

        def requests() -> Iterator[tuple[int, ChatRequest | CallResult]]:
            for batch in batches:
                for row in cast(list[dict[str, Any]], batch.to_dict("records")):
                    if row["request_key"] in skip:
                        counts["skipped"] += 1
                        continue
                    rows_by_key[row["request_key"]] = row
                    client = int(row["_client"])
                    try:
                        messages = _messages(row["messages_json"], row.get("image_bytes"))
                    except Exception as exc:
                        yield groups[client], CallResult(row["request_key"], "error", error_kind="bad_input",
                                                         error=f"{type(exc).__name__}: {exc}")
                        continue
                    yield groups[client], ChatRequest(row["request_key"], messages, json.loads(row["params_json"]))

        def call(item: ChatRequest | CallResult) -> CallResult:
            if isinstance(item, CallResult):
                return item
            return made[int(rows_by_key[item.key]["_client"])].call(item)

        try:
            for result in grouped_windows(call, requests(), windows):
                journal.write(_record(result, rows_by_key.pop(result.request_key), run_id))
                counts["asked"] += 1
                counts["ok"] += result.status == "ok"
        finally:
            journal.close()
            for c in made:
                c.close()
        yield pd.DataFrame([(part, attempt, counts["asked"], counts["ok"], counts["skipped"])],
                           columns=["partition", "attempt", "asked", "ok", "skipped"])

    return run


_TASK_COUNTS = "partition int, attempt int, asked long, ok long, skipped long"


def _endpoint_groups(clients: list[ClientSettings]) -> list[int]:
    """Clients that share their endpoints (the same ``api_base`` set) share one window."""
    seen: dict[tuple[str, ...], int] = {}
    return [seen.setdefault(tuple(sorted(c.api_bases)), len(seen)) for c in clients]


def commit_due(calls: int, text_bytes: int, waited_s: float, every: int, max_bytes: int, interval_s: float) -> bool:
    """Whether the driver stores the finished calls it holds now: ``every`` calls, ``max_bytes`` of their
    text (the bound on its memory: traces are long) or ``interval_s`` since the last commit, whichever first."""
    return calls > 0 and (calls >= every or text_bytes >= max_bytes or waited_s >= interval_s)


class _Store(threading.Thread):
    """The driver's side of a call: reads the journals as they grow, prints progress, and stores the
    finished calls in ``llm_calls`` while calls continue (``commit_due``: by count, text size or time), each
    batch one idempotent Delta commit (``txnAppId`` = the call's id, ``txnVersion`` = the batch number)."""

    def __init__(self, ctx, folder: str, total: int, label: str, app_id: str, every: int, interval_s: float,
                 progress_s: float, max_bytes: int):
        super().__init__(daemon=True)
        self.ctx, self.folder, self.total, self.label, self.app_id = ctx, folder, total, label, app_id
        self.every, self.interval_s, self.progress_s, self.max_bytes = every, interval_s, progress_s, max_bytes
        self.buffered_bytes = 0  # text of the buffered results: a commit is due past max_bytes
        self.progress = Progress(ctx.lakehouse.storage, folder)
        self.stop = threading.Event()
        self.start_time = time.monotonic()
        self.buffer: dict[str, dict[str, Any]] = {}
        self.stored_ok = KeySet()  # 8 bytes a key: millions of calls at full scale
        self.batches = 0
        self.ok: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.failure: BaseException | None = None
        self._lock = threading.Lock()

    def line(self) -> str:
        p = self.progress
        elapsed = max(time.monotonic() - self.start_time, 1e-6)
        rate = p.done / elapsed
        eta = (self.total - p.done) / rate if rate > 0 else float("inf")
        errors = " ".join(f"{k}={v}" for k, v in sorted(p.errors.items())) or "none"
        return (
            f"{self.label}: {p.done}/{self.total} calls ({100.0 * p.done / max(self.total, 1):.1f}%), "
            f"{rate:.1f} req/s, {p.tokens / elapsed / 1000:.1f}k tok/s, retried errors: {errors}, "
            f"{self.batches} commits, ETA {eta:.0f}s" if math.isfinite(eta) else f"{self.label}: {p.done}/{self.total} calls, starting"
        )

    def poll(self) -> None:
        for rec in self.progress.poll():
            key = rec["request_key"]
            if key in self.stored_ok:
                continue  # a speculative or retried attempt's second answer
            if key not in self.buffer or (rec["status"] == "ok" and self.buffer[key]["status"] != "ok"):
                self.buffer[key] = rec
                self.buffered_bytes += sum(len(c or "") for c in rec.get("choices") or []) + len(rec.get("error") or "")

    def commit(self) -> None:
        """Store what was read so far as one idempotent commit, then drop the journal objects it came from."""
        with self._lock:
            self.poll()
            if not self.buffer:
                return
            records, self.buffer, self.buffered_bytes = list(self.buffer.values()), {}, 0
            whole = [p for p in self.progress.seen if self.progress.whole(p)]
            self.ctx.lakehouse.append_once(_records_frame(self.ctx.spark, records), "llm_calls", self.ctx.run,
                                           self.app_id, self.batches)
            self.batches += 1
            for r in records:
                (self.ok if r["status"] == "ok" else self.errors)[r["purpose"]] += 1
                if r["status"] == "ok":
                    self.stored_ok.add(r["request_key"])
            for path in whole:  # stored: the object is no longer needed (appended files go at the end)
                self.ctx.lakehouse.storage.delete(path)
                self.progress.forget(path)

    def run(self) -> None:
        last_commit = last_line = time.monotonic()
        while not self.stop.wait(min(1.0, self.progress_s, self.interval_s)):
            try:
                with self._lock:
                    self.poll()
                    due = commit_due(len(self.buffer), self.buffered_bytes, time.monotonic() - last_commit,
                                     self.every, self.max_bytes, self.interval_s)
                if due:
                    self.commit()
                    last_commit = time.monotonic()
                if time.monotonic() - last_line >= self.progress_s:
                    log.info(self.line())
                    last_line = time.monotonic()
            except BaseException as exc:  # reported by finish(); the journals keep the calls
                self.failure = exc
                return

    def finish(self) -> None:
        """Stop, store the rest, remove the call's journals."""
        self.stop.set()
        self.join()
        if self.failure is not None:
            raise RuntimeError(f"{self.label}: storing finished calls failed (they stay in the journals and the "
                               f"next run stores them): {self.failure}") from self.failure
        self.commit()
        log.info(self.line())
        self.ctx.lakehouse.storage.delete(self.folder)


def _records_frame(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    rows = []
    for r in records:
        r = {k: r.get(k) for k in _RESULT_FIELDS}
        r["created_at"] = pd.Timestamp(r["created_at"]).to_pydatetime() if r["created_at"] else None
        rows.append(r)
    return spark.createDataFrame(pd.DataFrame(rows, columns=_RESULT_FIELDS), LLM_CALLS_SCHEMA)


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
        df = _records_frame(ctx.spark, list(best.values()))
        calls = lh.read("llm_calls")
        done = calls.where(F.col("status") == "ok").select("request_key")
        # a killed driver may have stored a batch without removing its journal: those rows are skipped
        stored_rows = calls.where(F.col("status") != "ok").select("request_key", "created_at")
        fresh = df.join(done, "request_key", "left_anti").join(stored_rows, ["request_key", "created_at"], "left_anti")
        stored = fresh.count()
        if stored:
            app = f"recover-{ctx.run_id}-{label}"
            lh.append_once(fresh.select(*_RESULT_FIELDS), "llm_calls", ctx.run, app, 0)
            log.info("%s: stored %d finished calls from the journals of an interrupted run", label, stored)
    for f in files:
        storage.delete(f)
    return stored


@dataclass
class Ask:
    """One purpose's requests (REQUEST_COLUMNS) and the client that answers them; ``label`` is the
    requests' purpose (it names the call's journals, commits and progress line)."""
    requests: DataFrame
    settings: ClientSettings
    label: str


PER_TASK_WINDOW = 64  # requests one task keeps in flight comfortably (threads, base64 images, JSON)


def call_tasks(spark: SparkSession, configured: int | None, in_flight: int, slots: int | None = None) -> int:
    """Tasks that make calls at once: ``llm.tasks``, else enough for ``in_flight`` requests at about
    ``PER_TASK_WINDOW`` each. When that is fewer than the task slots, one slot stays free for the commits
    made while calls continue; when the windows need every slot (a small cluster, a wide endpoint), the
    calls get them all and the commits wait for the first task to end (the journals hold the results).
    Calls are I/O bound: a few tasks with wide windows keep endpoints fuller than many with a request or
    two each (a task that runs out of work idles its share of the window)."""
    if configured:
        return int(configured)
    slots = slots if slots is not None else parallelism(spark, None)
    wanted = max(1, math.ceil(in_flight / PER_TASK_WINDOW))
    return wanted if wanted < slots else slots


def call_many(ctx, asks: list[Ask]) -> dict[str, CallStats]:
    """Make sure every request of every ask has a stored result; ask only for keys without a stored success.

    The purposes run side by side in one Spark job: each task interleaves the requests of all of them and
    keeps one window per endpoint (clients with the same endpoints share it), so no endpoint waits for
    another purpose or a job boundary. Results are stored by the driver while calls continue. Returns
    the stats per ask's label.
    """
    spark, lh, cfg = ctx.spark, ctx.lakehouse, ctx.cfg
    labels = [a.label for a in asks]
    if len(set(labels)) != len(labels):
        raise ValueError(f"call_many needs one ask per purpose, got {labels}")
    start = time.monotonic()
    out = {a.label: CallStats() for a in asks}
    recovered = recover_journals(ctx, "+".join(labels))
    if asks:
        out[asks[0].label].recovered = recovered
    done = lh.read("llm_calls").where(F.col("status") == "ok").select("request_key").distinct()
    pending = None
    for i, a in enumerate(asks):
        mine = (a.requests.select(*REQUEST_COLUMNS).dropDuplicates(["request_key"])
                .join(done, "request_key", "left_anti").withColumn("_client", F.lit(i)))
        pending = mine if pending is None else pending.unionByName(mine)
    if pending is None:
        return out
    root = lh.staging_root
    call_id = f"{'+'.join(labels).replace('/', '_')}-{uuid.uuid4().hex[:8]}"  # one per call: rounds never share commits
    staged = spark_path(join(root, "requests", ctx.run_id, call_id))
    clients = [a.settings for a in asks]
    groups = _endpoint_groups(clients)
    reach: dict[int, int] = {}  # requests in flight per endpoint group (the smaller promise holds)
    for i, c in enumerate(clients):
        reach[groups[i]] = min(reach.get(groups[i], 1 << 30), c.max_concurrency * len(c.api_bases))
    slots = parallelism(spark, None)
    tasks = call_tasks(spark, cfg.settings.llm.tasks, sum(reach.values()), slots)
    images = lh.read("images").select("image_id", F.col("bytes").alias("image_bytes"))
    # Staged once with their image bytes, in one file per call task, purposes interleaved (ordered by a
    # hash of the key) so each task's endpoints all have work from its first row to its last.
    hashed = pending.join(images, "image_id", "left").withColumn("_h", F.xxhash64("request_key"))
    hashed.repartition(tasks, "_h").sortWithinPartitions("_h").drop("_h").write.mode("overwrite").parquet(staged)
    staged_df = spark.read.parquet(staged)
    counts = {int(r["_client"]): int(r["count"]) for r in staged_df.groupBy("_client").count().collect()}
    n = sum(counts.values())
    for i, a in enumerate(asks):
        out[a.label].requested = out[a.label].sent = counts.get(i, 0)
    if n == 0:
        lh.storage.delete(staged)
        return out
    concurrent = max(1, min(tasks, slots))
    windows = {g: max(1, n // concurrent) for g, n in reach.items()}
    journal_root = join(root, "journal")
    folder = join(journal_root, ctx.run_id, call_id)
    llm = cfg.settings.llm
    store = _Store(ctx, folder, n, "+".join(labels), f"{ctx.run_id}-{call_id}", max(1, int(llm.shard_size)),
                   float(llm.commit_interval_s), float(llm.progress_interval_s), int(float(llm.commit_mb) * 2**20))
    store.start()
    failed = False
    try:
        with job_description(spark, f"mfr {ctx.run.stage}: {' + '.join(labels)} calls"):
            staged_df.coalesce(tasks).mapInPandas(
                _task_fn(clients, windows, concurrent, ctx.run_id, journal_root, call_id, lh.storage), _TASK_COUNTS
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
    lh.storage.delete(staged)
    for a in asks:
        out[a.label].ok, out[a.label].errors = store.ok[a.label], store.errors[a.label]
        out[a.label].seconds = time.monotonic() - start
    return out


def call_models(ctx, requests: DataFrame, settings: ClientSettings, label: str) -> CallStats:
    """``call_many`` for one purpose."""
    return call_many(ctx, [Ask(requests, settings, label)])[label]


def ask_many(ctx, asks: list[Ask]) -> dict[str, DataFrame]:
    """Make sure every request of every ask has a result (the purposes side by side, ``call_many``), then
    return per label the (sample_key, choices) of the successes.

    Requests are staged first so the rows asked and the rows joined back are the same ones.
    """
    tag = uuid.uuid4().hex[:6]  # a purpose may be asked again in the same run
    staged = [Ask(persist(ctx, a.requests, f"{a.label}-requests-{tag}"), a.settings, a.label) for a in asks]
    stats = call_many(ctx, staged)
    out = {}
    for a in staged:
        st = stats[a.label]
        log.info("%s: %d asked, %d ok, %d errors", a.label, st.requested, st.ok, st.errors)
        ok = ctx.lakehouse.read("llm_calls").where((F.col("purpose") == a.label) & (F.col("status") == "ok"))
        ok = ok.select("request_key", "choices").dropDuplicates(["request_key"])
        out[a.label] = a.requests.select("request_key", "sample_key").join(ok, "request_key").select("sample_key", "choices")
    return out


def prompt_requests(df: DataFrame, *, purpose: str, settings: ClientSettings, prompt: str,
                    params: dict[str, Any], fields: list[str], with_image: bool) -> DataFrame:
    """One request per row of ``df`` with the prompt file ``prompt`` (its ``{field}`` slots filled)."""
    from mfr.prompts import load_prompt

    template, version = load_prompt(prompt)
    return build_requests(df, purpose=purpose, model=settings.model, template=template, prompt_version=version,
                          params=params, fields=fields, with_image=with_image)
