"""The whole pipeline over Spark Connect: a local Connect server (pip pyspark ships one) with Delta and the
embedded metastore, and the same rows and reject reasons as the classic session (the golden funnel)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.compat  # Spark Connect per line (legs in COMPAT_CONNECT_LEGS)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the whole pipeline over Connect, in a process of its own
def test_pipeline_over_spark_connect_matches_the_classic_golden_funnel(connect_funnel) -> None:
    """Over a client that refuses session settings as Databricks serverless does: the same rows and reasons,
    each stage's output version still names its run."""
    out = connect_funnel.proc
    assert out.returncode == 0, out.stderr[-4000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    golden = json.loads((REPO / "tests" / "golden" / "funnel_synthetic.json").read_text(encoding="utf-8"))
    assert got["lines"] == golden["lines"]
    # what mfr would have set met the refusal (the MERGE/UPDATE commit metadata, the image batch size) …
    assert {"spark.databricks.delta.commitInfo.userMetadata", "spark.sql.execution.arrow.maxRecordsPerBatch"} <= set(
        got["refused"])
    # … and the lineage people read lives on: every stage's published version carries its run
    assert set(got["output_names_run"]) >= {"collect", "clean", "distill", "select"}
    assert all(got["output_names_run"].values()), got["output_names_run"]
    assert "does not let spark.databricks.delta.commitInfo.userMetadata be set" in out.stderr


@pytest.mark.slow
def test_two_runs_of_one_stage_at_once_serialize_or_one_is_told_busy(connect_server, synthetic_dump, tmp_path) -> None:
    """Two `mfr run --stage collect` on one lakehouse at the same moment (one shared metastore): never both
    running, never a half-written table or a lost version."""
    pytest.importorskip("grpc")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    sets = ["--set", f"spark.remote={connect_server}", "--set", f"collection.source={synthetic_dump}",
            "--set", f"lakehouse.warehouse={tmp_path / 'client'}"]
    procs = [subprocess.Popen([sys.executable, "-m", "mfr.cli", "run", "--stage", "collect", "--json", *sets], cwd=REPO,
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(600), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    busy = [err for code, _, err in results if code == 2]
    assert codes in ([0, 0], [0, 2]), [r[2][-2000:] for r in results]
    if busy:
        assert "mfr: busy: stage collect is held by run" in busy[0]
    query = ("SELECT run_id, status, started_at, finished_at, output_version, rows_kept + rows_rejected AS rows "
             "FROM mfr.runs ORDER BY started_at")
    out = subprocess.run([sys.executable, "-m", "mfr.cli", "sql", "--json", query, *sets[:2]], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    runs = json.loads(out.stdout)
    done = [r for r in runs if r["status"] == "succeeded"]
    assert len(done) == 2 - len(busy) and all(r["status"] in ("succeeded", "failed") for r in runs)
    for a, b in zip(done, done[1:]):  # serialized: the second started after the first finished
        assert a["finished_at"] <= b["started_at"]
    counts = subprocess.run([sys.executable, "-m", "mfr.cli", "sql", "--json",
                             "SELECT count(*) AS n, count(DISTINCT sample_key) AS d FROM mfr.collected", *sets[:2]],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert json.loads(counts.stdout) == [{"n": done[-1]["rows"], "d": done[-1]["rows"]}]  # whole, no duplicates


@pytest.mark.slow
def test_model_calls_over_spark_connect_store_each_result_once_while_calls_continue(connect_funnel) -> None:
    """Distill over Connect, on the lakehouse the funnel left: CoT and caption asked side by side, finished calls
    stored by the driver's thread in several commits while the call job runs, each success once."""
    from tests.openai_server import OpenAIServer, ServerSettings, dump_shaped_responder

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lib"), os.environ.get("PYTHONPATH", "")])}
    with OpenAIServer(ServerSettings(latency_mean_s=0.1), responder=dump_shaped_responder) as teacher:
        out = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "connect_calls.py"), connect_funnel.url,
                              connect_funnel.schema, str(connect_funnel.scratch), teacher.url],
                             capture_output=True, text=True, timeout=1200, env=env)
        stats = teacher.stats()
    assert out.returncode == 0, out.stderr[-4000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["pending"] == 0 and got["distilled_cot"] > 0
    assert got["ok"] == got["distinct_ok"] == stats["successes"]  # every answer stored, once
    assert got["commits"] >= 3  # stored in batches of 20 while the calls went on, not once at the end
