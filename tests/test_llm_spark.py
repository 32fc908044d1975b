"""Model calls through Spark under failure: a forced task retry, and a driver killed with SIGKILL mid-stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.openai_server import OpenAIServer, ServerSettings

REPO = Path(__file__).resolve().parents[1]


def _env():
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1",
               PYTHONPATH=str(REPO))
    return env


@pytest.mark.slow  # over a minute of its own: `make test-slow` (CI runs it)
def test_task_retry_never_asks_or_stores_a_result_twice(tmp_path):
    with OpenAIServer(ServerSettings(latency_mean_s=0.002)) as srv:
        proc = subprocess.run(
            [sys.executable, "-m", "tests.scripts.task_retry", str(tmp_path / "lh"), srv.url],
            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        stats = srv.stats()
    summary = json.loads(proc.stdout.split("SUMMARY ", 1)[1].splitlines()[0])
    assert summary["attempt_0_died"]  # the first attempt really failed after some of its calls…
    assert summary["stored"] == summary["distinct_keys"] == summary["ok"] == 1200  # …each result is stored once
    # …and the retry asked only what the failed attempt had not journaled (it had at least 250 answered)
    assert stats["duplicate_successes"] == 0, stats
    assert stats["keys"] == 1200 and stats["requests"] <= 1200, stats





@pytest.mark.slow  # a Delta table of its own and two rounds of calls (~20 s warm): `make test-slow`
def test_the_call_layer_runs_on_any_dataframe_of_requests_with_a_context_of_its_own(spark, tmp_path):
    """As from a notebook: no stage, no run log, no lakehouse: requests built from a literal DataFrame, the
    calls stored in a Delta table of the caller's own through its commit callback, each once."""
    from pyspark.sql import functions as F

    from mfr.config import load_config
    from mfr.lakehouse import LLM_CALLS_SCHEMA
    from mfr.llm.calls import ask_many, call_models
    from mfr.llm.client import ClientSettings
    from mfr.llm.context import CallContext
    from mfr.llm.requests import Ask, build_requests
    from mfr.storage import Storage

    table = str(tmp_path / "my_calls")
    spark.createDataFrame([], LLM_CALLS_SCHEMA).write.format("delta").save(table)
    commits = []

    def commit(df, app_id: str, batch: int) -> None:
        commits.append((app_id, batch))
        df.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch).save(table)

    staging = str(tmp_path / "staging")
    ctx = CallContext(spark, run_id="notebook-1", label="notebook", storage=Storage(), staging_root=staging,
                      settings=load_config().settings.llm, stored=lambda: spark.read.format("delta").load(table),
                      commit=commit)
    rows = spark.createDataFrame([(f"q:{i}", None, f"What is {i} + {i}?") for i in range(6)],
                                 "sample_key string, image_id string, question string")
    with OpenAIServer(ServerSettings(latency_mean_s=0.001)) as srv:
        settings = ClientSettings((srv.url,), "m", max_concurrency=4, backoff_base_s=0.01)
        reqs = build_requests(rows, purpose="sum", model="m", template="Answer: {question}", prompt_version="p@1",
                              params={"temperature": 0.0}, fields=["question"], with_image=False)
        first = call_models(ctx, reqs, settings, "sum")
        asked_first = len(srv.bodies)
        answers = ask_many(ctx, [Ask(reqs, settings, "sum")])["sum"].collect()
        asked_after = len(srv.bodies)
    assert (first.requested, first.ok, first.errors) == (6, 6, 0) and asked_first == 6
    assert asked_after == asked_first  # every result was stored: asked again, nothing goes out
    assert sorted(r["sample_key"] for r in answers) == [f"q:{i}" for i in range(6)]
    assert all(r["choices"] and r["choices"][0]["text"] for r in answers)
    stored = spark.read.format("delta").load(table)
    assert stored.count() == stored.select("request_key").distinct().count() == 6
    assert stored.where(F.col("run_id") != "notebook-1").count() == 0 and commits
    assert "What is 3 + 3?" in json.dumps(srv.bodies)  # the row's field filled the prompt
    assert Storage().list_files(staging) == []  # journals stored and removed, staged requests gone
