"""Model calls: efficiency against the server's ideal, speed-up over one-at-a-time, and fault tolerance.

The OpenAI-compatible test server runs in its own process (capacity 256, lognormal latency, mean 0.5 s),
so client and server never share a GIL. Figures:

* ``llm.efficiency``: requests/s the server served while the Spark call phase ran ÷ capacity/mean latency;
* ``llm.efficiency_end_to_end``: the same over the whole ``call_models`` (staging and commits included);
* ``llm.efficiency_client`` and ``llm.client_cpu_s_per_1k``: the client alone (one process, window 256);
* ``llm.speedup_vs_serial``: the Spark path's rate ÷ one request at a time (the seed's way);
* ``llm.fault_completion`` and ``llm.duplicate_success_calls`` under 20% injected faults.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.llm.client import ChatRequest, ClientSettings, OpenAIClient
from mfr.llm.spark_calls import call_models
from mfr.llm.window import sliding_window
from mfr.stages.common import StageContext

ROOT = Path(__file__).resolve().parents[1]
CAPACITY, MEAN = 256, 0.5


class Server:
    def __init__(self, workdir: Path, latency: float, faults: dict | None = None, hang_s: float = 30.0):
        port_file = workdir / f"port-{time.time_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.openai_server", "--latency-mean", str(latency), "--latency-sigma", "0.5",
             "--capacity", str(CAPACITY), "--faults", json.dumps(faults or {}), "--hang-s", str(hang_s),
             "--port-file", str(port_file)],
            cwd=ROOT,
        )
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text()}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url.replace("/v1", "/stats"), timeout=10) as r:
            return json.loads(r.read())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _messages() -> list[dict]:
    return [{"role": "user", "content": "Solve it and reply with <answer>."}]


def _client_only(url: str, n: int, window: int) -> tuple[float, float]:
    client = OpenAIClient(ClientSettings((url,), "m", max_concurrency=window, timeout_s=30), pool=window)
    reqs = (ChatRequest(f"c{i}", _messages(), {"max_tokens": 64}) for i in range(n))
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    ok = sum(r.status == "ok" for r in sliding_window(client.call, reqs, window))
    elapsed, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    assert ok == n
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return n / elapsed, cpu / n * 1000


def _spark_calls(spark, make_cfg, url: str, n: int, settings: ClientSettings, prefix: str) -> tuple[float, dict]:
    cfg = make_cfg("llm.progress_interval_s=5")
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    run = RunLog(lh).start("distill", cfg, {}, None)
    ctx = StageContext(spark, cfg, run, lh, {})
    msgs = json.dumps(_messages())
    rows = [(f"{prefix}{i}", f"s:{i}", "cot", "m", "p@1", 0, msgs, '{"max_tokens": 64}', None) for i in range(n)]
    reqs = spark.createDataFrame(
        rows, "request_key string, sample_key string, purpose string, model string, prompt_version string, "
        "sample_index int, messages_json string, params_json string, image_id string",
    )
    start = time.perf_counter()
    stats = call_models(ctx, reqs, settings, "cot")
    return time.perf_counter() - start, {"ok": stats.ok, "errors": stats.errors}


def run(spark, make_cfg, workdir: Path, rows: int = 16000) -> dict[str, float]:
    ideal = CAPACITY / MEAN
    out: dict[str, float] = {}
    server = Server(workdir, MEAN)
    try:
        rate, cpu = _client_only(server.url, 6000, CAPACITY)
        out["llm.efficiency_client"] = rate / ideal
        out["llm.client_cpu_s_per_1k"] = cpu
        serial_n = 30
        serial_rate, _ = _client_only(server.url, serial_n, 1)
        out["llm.serial_rps"] = serial_rate
    finally:
        server.close()
    server = Server(workdir, MEAN)
    try:
        settings = ClientSettings((server.url,), "m", max_concurrency=CAPACITY, timeout_s=30)
        total, res = _spark_calls(spark, make_cfg, server.url, rows, settings, "e")
        st = server.stats()
        assert res["ok"] == rows, res
        out["llm.rps"] = st["requests"] / st["busy_s"]
        out["llm.efficiency"] = out["llm.rps"] / ideal
        out["llm.efficiency_end_to_end"] = rows / total / ideal
        out["llm.speedup_vs_serial"] = out["llm.rps"] / serial_rate
    finally:
        server.close()
    faults = {"http_500": 0.06, "reset": 0.04, "malformed": 0.04, "http_429": 0.04, "hang": 0.02}
    server = Server(workdir, 0.1, faults, hang_s=20)
    try:
        settings = ClientSettings((server.url,), "m", max_concurrency=CAPACITY, timeout_s=3, max_attempts=6,
                                  backoff_base_s=0.2, backoff_max_s=5)
        n = 3000
        _, res = _spark_calls(spark, make_cfg, server.url, n, settings, "f")
        st = server.stats()
        out["llm.fault_rate_injected"] = sum(st["faults"].values()) / st["requests"]
        out["llm.fault_completion"] = res["ok"] / n
        out["llm.duplicate_success_calls"] = float(st["duplicate_successes"])
    finally:
        server.close()
    return out
