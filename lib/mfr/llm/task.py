"""The Spark task that makes calls (``mapInPandas``): a sliding window per endpoint over the task's requests
of every purpose, each result journaled as it lands; a retried attempt skips what its earlier attempts
journaled. The driver stores the journals (``mfr.llm.store``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pandas as pd

from mfr.llm.client import CallResult, ChatRequest, ClientSettings
from mfr.llm.journal import JournalWriter, journal_prefix
from mfr.llm.planning import endpoint_groups
from mfr.llm.requests import IMAGE_URL
from mfr.storage import Storage


def record(result: CallResult, req_row: dict[str, Any], run_id: str) -> dict[str, Any]:
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


def messages_of(messages_json: str, image: bytes | None) -> list[dict[str, Any]]:
    """Messages with the image placeholder replaced by the image's data URL."""
    from mfr.llm.images import image_data_url

    messages = json.loads(messages_json)
    url = None
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url" and part["image_url"]["url"] == IMAGE_URL:
                    if image is None:
                        raise ValueError("request needs an image but none is stored")
                    url = url or image_data_url(image)
                    part["image_url"]["url"] = url
    return messages


def task_fn(clients: list[ClientSettings], windows: dict[int, int], share: int, run_id: str, journal_root: str,
             call_id: str, storage: Storage):
    """The mapInPandas body: one sliding window per endpoint over this task's requests of every purpose
    (``_client``: the index of the request's client; ``windows``: endpoint group -> window; ``share``:
    tasks calling at once, each with its share of the rate caps). Results go to the journal only (the
    driver stores them while calls continue); the task yields one row of counts."""
    groups = endpoint_groups(clients)

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
                        messages = messages_of(row["messages_json"], row.get("image_bytes"))
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
                journal.write(record(result, rows_by_key.pop(result.request_key), run_id))
                counts["asked"] += 1
                counts["ok"] += result.status == "ok"
        finally:
            journal.close()
            for c in made:
                c.close()
        yield pd.DataFrame([(part, attempt, counts["asked"], counts["ok"], counts["skipped"])],
                           columns=["partition", "attempt", "asked", "ok", "skipped"])

    return run


TASK_COUNTS = "partition int, attempt int, asked long, ok long, skipped long"
