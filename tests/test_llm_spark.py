"""Model calls through Spark under failure: a forced task retry, and a driver killed with SIGKILL mid-stage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
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


def _server_process(tmp_path, latency):
    from tests.openai_server import spawn

    return spawn(tmp_path, "--latency-mean", str(latency), "--capacity", "64", env=_env())


def _stats(url):
    with urllib.request.urlopen(url.replace("/v1", "/stats"), timeout=5) as r:
        return json.loads(r.read())


@pytest.mark.slow  # ~95 s of its own driver and JVM: `make test-slow`
def test_sigkill_mid_distill_then_rerun_repeats_only_in_flight_calls(tmp_path, synthetic_dump):
    server, url = _server_process(tmp_path, latency=0.15)
    try:
        args = [sys.executable, "-m", "tests.scripts.distill_run", str(tmp_path / "lh"), str(synthetic_dump), url]
        driver = subprocess.Popen([*args, "1"], cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 300
        while time.time() < deadline:
            if _stats(url)["successes"] >= 40:
                break
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
        before = _stats(url)
        assert 40 <= before["successes"] < 90, before  # killed mid-stage
        # the JVM and Python workers of the killed driver go down with it
        time.sleep(3)
        rerun = subprocess.run([*args, "0"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
        assert "DISTILLED" in rerun.stdout
        after = _stats(url)
    finally:
        server.kill()
    # every row needed a CoT (overwrite) and rows with images a caption: all answered, none stored twice
    window = 8 * 2  # max_concurrency x 2 tasks could be in flight at the kill
    assert after["duplicate_successes"] <= window, (before, after)
    check = subprocess.run(
        [sys.executable, "-c", (
            "import json,sys;from mfr.config import load_config;from mfr.session import get_spark;"
            f"cfg=load_config(overrides=['lakehouse.warehouse={tmp_path / 'lh'}','spark.master=local[1]']);s=get_spark(cfg);"
            "c=s.table('mfr.llm_calls').where(\"status='ok'\");"
            "print('COUNTS',json.dumps([c.count(),c.select('request_key').distinct().count()]))"
        )],
        cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    ok, distinct = json.loads(check.stdout.split("COUNTS ", 1)[1].splitlines()[0])
    assert ok == distinct
