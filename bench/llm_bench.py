"""Model calls: efficiency against the server's ideal, speed-up over one-at-a-time, and fault tolerance.

The OpenAI-compatible test server runs in its own process (capacity 256, lognormal latency, mean 0.5 s),
so client and server never share a GIL. Figures:

* ``llm.efficiency``: requests/s the server served while the Spark call phase ran ÷ capacity/mean latency;
* ``llm.efficiency_end_to_end``: the same over the whole ``call_models`` (staging and commits included);
* ``llm.efficiency_client`` and ``llm.client_cpu_s_per_1k``: the client alone (one process, window 256);
* ``llm.speedup_vs_serial``: the Spark path's rate ÷ one request at a time (the seed's way);
* ``llm.fault_completion`` and ``llm.duplicate_success_calls`` under 20% injected faults;
* ``llm.utilisation_heavy_tail``: two servers (CoT and caption, 16 slots each, lognormal service times
  σ 1.0, mean 0.2 s, 8000 requests each) asked side by side with 5 commits (``llm.shard_size``) per
  purpose; each server's busy slot-seconds ÷ (16 × the span from the first call of either server to the
  last of either), the lower of the two (``..._cot``/``..._caption`` each; ``llm.utilisation_own_span_*``
  over each server's own span).
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
from mfr.llm.calls import call_many, call_models
from mfr.llm.client import ChatRequest, ClientSettings, OpenAIClient
from mfr.llm.requests import Ask
from mfr.llm.window import sliding_window
from mfr.runlog import RunLog
from mfr.stages.common import StageContext

ROOT = Path(__file__).resolve().parents[1]
CAPACITY, MEAN = 256, 0.5


class Server:
    def __init__(self, workdir: Path, latency: float, faults: dict | None = None, hang_s: float = 30.0,
                 capacity: int = CAPACITY, sigma: float = 0.5, seed: int = 0, extra: tuple[str, ...] = ()):
        port_file = workdir / f"port-{time.time_ns()}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.openai_server", "--latency-mean", str(latency), "--latency-sigma", str(sigma),
             "--capacity", str(capacity), "--faults", json.dumps(faults or {}), "--hang-s", str(hang_s),
             "--port-file", str(port_file), "--seed", str(seed), *extra],
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


def _context(spark, make_cfg, *overrides: str) -> StageContext:
    cfg = make_cfg("llm.progress_interval_s=5", *overrides)
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    run = RunLog(lh).start("distill", cfg, {}, None)
    return StageContext(spark, cfg, run, lh, {})


def _requests(spark, n: int, prefix: str, purpose: str = "cot"):
    msgs = json.dumps(_messages())
    rows = [(f"{prefix}{i}", f"s:{i}", purpose, "m", "p@1", 0, msgs, '{"max_tokens": 64}', None) for i in range(n)]
    return spark.createDataFrame(
        rows, "request_key string, sample_key string, purpose string, model string, prompt_version string, "
        "sample_index int, messages_json string, params_json string, image_id string",
    )


def _spark_calls(spark, make_cfg, url: str, n: int, settings: ClientSettings, prefix: str) -> tuple[float, dict]:
    ctx = _context(spark, make_cfg)
    reqs = _requests(spark, n, prefix)
    start = time.perf_counter()
    stats = call_models(ctx.calls(), reqs, settings, "cot")
    return time.perf_counter() - start, {"ok": stats.ok, "errors": stats.errors}


HEAVY_SLOTS, HEAVY_MEAN, HEAVY_ROWS, HEAVY_SHARDS = 16, 0.2, 8000, 5


def _utilisation_heavy_tail(spark, make_cfg, workdir: Path) -> dict[str, float]:
    """CoT and caption servers side by side; busy slot-seconds over the common span."""
    # the same seed: both draw the same service times, so their total work is equal and the figure measures
    # the idle slots the client leaves, not which server drew the heavier tail
    servers = {p: Server(workdir, HEAVY_MEAN, capacity=HEAVY_SLOTS, sigma=1.0, seed=7) for p in ("cot", "caption")}
    try:
        ctx = _context(spark, make_cfg, f"llm.shard_size={HEAVY_ROWS // HEAVY_SHARDS}")
        asks = [Ask(_requests(spark, HEAVY_ROWS, f"u-{p}-", p),
                    ClientSettings((srv.url,), "m", max_concurrency=HEAVY_SLOTS, timeout_s=60), p)
                for p, srv in servers.items()]
        stats = call_many(ctx.calls(), asks)
        st = {p: srv.stats() for p, srv in servers.items()}
    finally:
        for srv in servers.values():
            srv.close()
    assert all(s.ok == HEAVY_ROWS for s in stats.values()), stats
    span = max(s["last_response_at"] for s in st.values()) - min(s["first_request_at"] for s in st.values())
    out = {f"llm.utilisation_heavy_tail_{p}": s["busy_slot_s"] / (HEAVY_SLOTS * span) for p, s in st.items()}
    out["llm.utilisation_heavy_tail"] = min(out.values())
    for p, s in st.items():  # over its own span: what the tail of the other purpose costs shows as the difference
        out[f"llm.utilisation_own_span_{p}"] = s["busy_slot_s"] / (HEAVY_SLOTS * (s["last_response_at"] - s["first_request_at"]))
    return out


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
    out.update(_utilisation_heavy_tail(spark, make_cfg, workdir))
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
