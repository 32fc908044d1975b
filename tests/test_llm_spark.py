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



