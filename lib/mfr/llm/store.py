"""The driver's side of a call: a thread that reads the journals as they grow, prints progress and commits
finished calls while calls continue (by count, text size or time; each batch one idempotent commit through
the context's ``commit``), and the recovery of journals an interrupted run left."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from mfr.lakehouse import LLM_CALLS_SCHEMA
from mfr.llm.context import CallContext
from mfr.llm.journal import Progress, read_records
from mfr.llm.keys import KeySet
from mfr.storage import join, relative

log = logging.getLogger(__name__)

RESULT_FIELDS = [f.name for f in LLM_CALLS_SCHEMA.fields]


def commit_due(calls: int, text_bytes: int, waited_s: float, every: int, max_bytes: int, interval_s: float) -> bool:
    """Whether the driver stores the finished calls it holds now: ``every`` calls, ``max_bytes`` of their
    text (the bound on its memory: traces are long) or ``interval_s`` since the last commit, whichever first."""
    return calls > 0 and (calls >= every or text_bytes >= max_bytes or waited_s >= interval_s)


class CallStore(threading.Thread):
    """The driver's side of a call: reads the journals as they grow, prints progress, and stores the
    finished calls in ``llm_calls`` while calls continue (``commit_due``: by count, text size or time), each
    batch one idempotent Delta commit (``txnAppId`` = the call's id, ``txnVersion`` = the batch number)."""

    def __init__(self, ctx: CallContext, folder: str, total: int, label: str, app_id: str, every: int, interval_s: float,
                 progress_s: float, max_bytes: int):
        super().__init__(daemon=True)
        self.ctx, self.folder, self.total, self.label, self.app_id = ctx, folder, total, label, app_id
        self.every, self.interval_s, self.progress_s, self.max_bytes = every, interval_s, progress_s, max_bytes
        self.buffered_bytes = 0  # text of the buffered results: a commit is due past max_bytes
        self.progress = Progress(ctx.storage, folder)
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
            self.ctx.commit(records_frame(self.ctx.spark, records), self.app_id, self.batches)
            self.batches += 1
            for r in records:
                (self.ok if r["status"] == "ok" else self.errors)[r["purpose"]] += 1
                if r["status"] == "ok":
                    self.stored_ok.add(r["request_key"])
            for path in whole:  # stored: the object is no longer needed (appended files go at the end)
                self.ctx.storage.delete(path)
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
        self.ctx.storage.delete(self.folder)


def records_frame(spark: SparkSession, records: list[dict[str, Any]]) -> DataFrame:
    rows = []
    for r in records:
        r = {k: r.get(k) for k in RESULT_FIELDS}
        r["created_at"] = pd.Timestamp(r["created_at"]).to_pydatetime() if r["created_at"] else None
        rows.append(r)
    return spark.createDataFrame(pd.DataFrame(rows, columns=RESULT_FIELDS), LLM_CALLS_SCHEMA)


def recover_journals(ctx: CallContext, label: str = "llm") -> int:
    """Store finished calls that a killed run journaled but never committed; returns how many."""
    storage = ctx.storage
    root = join(ctx.staging_root, "journal")
    files = storage.list_files(root, ".jsonl")
    if not files:
        return 0
    live = ctx.busy_runs() - {ctx.run_id}  # another stage's run in progress keeps its journals
    files = [f for f in files if relative(root, f).split("/", 1)[0] not in live]
    records = [r for f in files for r in read_records(storage, f)]
    stored = 0
    if records:
        best: dict[str, dict[str, Any]] = {}
        for r in records:  # one result per key, a success over an error
            if r["request_key"] not in best or (r["status"] == "ok" and best[r["request_key"]]["status"] != "ok"):
                best[r["request_key"]] = r
        df = records_frame(ctx.spark, list(best.values()))
        calls = ctx.stored()
        done = calls.where(F.col("status") == "ok").select("request_key")
        # a killed driver may have stored a batch without removing its journal: those rows are skipped
        stored_rows = calls.where(F.col("status") != "ok").select("request_key", "created_at")
        fresh = df.join(done, "request_key", "left_anti").join(stored_rows, ["request_key", "created_at"], "left_anti")
        stored = fresh.count()
        if stored:
            app = f"recover-{ctx.run_id}-{label}"
            ctx.commit(fresh.select(*RESULT_FIELDS), app, 0)
            log.info("%s: stored %d finished calls from the journals of an interrupted run", label, stored)
    for f in files:
        storage.delete(f)
    return stored
