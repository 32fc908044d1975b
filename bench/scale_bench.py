"""Scale (`python -m bench.run scale`): the whole pipeline on the synthetic dump at N and 4N rows.

Each size runs in a driver process of its own (a fresh driver JVM and two executor JVMs of one core each,
``local-cluster[2,1,1536]``, as a job on a cluster), with a test teacher that answers at once in the dump's
shapes; distill asks every row (CoT and caption). The lakehouse's tables are created before the stages
(``scale.seconds.schema.*``: once per lakehouse, not per row). Figures:

* ``scale.seconds.<stage>.n`` / ``.4n``: each stage's whole run (its bookkeeping included);
* ``scale.growth.<stage>`` = log(t₄ₙ / tₙ) / log 4: 1.0 is linear, below 1 the fixed costs still weigh;
* ``scale.driver_rss_mb.n`` / ``.4n`` and ``scale.driver_rss_ratio``: peak resident memory of the driver
  (its Python process and its JVM, sampled every 0.2 s; the executors' JVMs and Python workers are not);
* ``scale.rows_per_s.<stage>`` at 4N (rows in ÷ seconds, 2 cores).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mfr.sample.synthetic import write_sample
from mfr.stages.registry import NAMES

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "lib"), str(REPO)]))
    return env


def _teacher(root: Path, dump: Path) -> tuple[subprocess.Popen, str]:
    """Answers at once in the dump's shapes, with the gold answer (so select keeps rows and export has work)."""
    from tests.openai_server import spawn

    return spawn(root, "--responder", "dump", "--answers-from", str(dump), "--capacity", "256", env=_env())


Measured = tuple[dict[str, float], dict[str, int], int, dict[str, list[float]]]  # times, rows, peak RSS, peaks per stage


def _one_size(root: Path, rows: int) -> Measured:
    work = root / f"n{rows}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    dump = work / "dump"
    write_sample(dump, rows)
    server, url = _teacher(work, dump)
    try:
        return _drive(work, dump, url, rows)
    finally:
        server.kill()
        shutil.rmtree(work, ignore_errors=True)


def _drive(work: Path, dump: Path, url: str, rows: int) -> Measured:
    teacher = {"api_base": url, "max_concurrency": 64, "backoff_base_s": 0.01}
    config = work / "scale.yaml"
    config.write_text(yaml.safe_dump({
        "lakehouse": {"warehouse": str(work / "lake")},
        # two executor JVMs of one core each, so the driver's JVM holds the driver alone; its heap capped (not
        # the local default of 3 GB): a JVM grows its heap toward its cap whatever it holds, so an uncapped
        # peak says more about the GC than about mfr. Both as on a cluster.
        "spark": {"master": "local-cluster[2,1,1536]", "shuffle_partitions": 4,
                  "conf": {"spark.driver.memory": "1536m"}},
        "collection": {"source": str(dump)},
        # every row is asked (as when the traces are rebuilt), not only rows whose dump trace is unusable
        "distillation": {"overwrite": True, "cot": {"client": {**teacher, "model": "cot-model"}},
                         "caption": {"client": {**teacher, "model": "caption-model"}}},
        "export": {"out": str(work / "export"), "overwrite": True},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "bench.scale_driver", str(config)], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out, _ = proc.communicate(timeout=3600)
    lines = {ln.split(" ", 1)[0]: json.loads(ln.split(" ", 1)[1]) for ln in out.splitlines()
             if ln.startswith(("TIMES ", "ROWS ", "PEAKS ", "PEAK "))}
    if proc.returncode != 0 or "TIMES" not in lines:
        raise RuntimeError(f"scale driver failed at {rows} rows (exit {proc.returncode}): {out[-2000:]}")
    return lines["TIMES"], lines["ROWS"], int(lines["PEAK"]), lines["PEAKS"]


def run(spark, make_cfg, workdir: Path, rows: int = 5000) -> dict[str, float]:
    root = workdir / "scale"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    t1, _, rss1, peaks1 = _one_size(root, rows)
    t4, rows4, rss4, peaks4 = _one_size(root, 4 * rows)
    out: dict[str, float] = {"scale.rows_n": float(rows)}
    out["scale.seconds.schema.n"], out["scale.seconds.schema.4n"] = t1["schema"], t4["schema"]
    for stage in NAMES:
        out[f"scale.seconds.{stage}.n"] = t1[stage]
        out[f"scale.seconds.{stage}.4n"] = t4[stage]
        out[f"scale.growth.{stage}"] = math.log(t4[stage] / t1[stage]) / math.log(4)
        out[f"scale.rows_per_s.{stage}"] = rows4[stage] / t4[stage]
    out["scale.driver_rss_mb.n"] = rss1 / 2**20
    out["scale.driver_rss_mb.4n"] = rss4 / 2**20
    out["scale.driver_rss_ratio"] = rss4 / rss1
    for size, peaks in (("n", peaks1), ("4n", peaks4)):  # which stage and which side (Python, JVM) holds memory
        for stage, (py_mb, jvm_mb) in peaks.items():
            out[f"scale.driver_rss_mb.{stage}.python.{size}"] = py_mb
            out[f"scale.driver_rss_mb.{stage}.jvm.{size}"] = jvm_mb
    print(f"scale: {json.dumps({k: round(v, 3) for k, v in out.items()})}", file=sys.stderr)
    return out
