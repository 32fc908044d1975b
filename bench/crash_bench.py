"""Kill-anywhere trials (`python -m bench.run crash`): for each stage, SIGKILL the whole driver (Python, its
JVM and workers) at seeded random moments, rerun the stage, and compare with an uninterrupted run.

A trial is recovered when, after the rerun: every stage table up to the killed one holds the same
(sample_key, reject_reason) as the uninterrupted run, no stage table has a duplicate sample_key, no request
has two stored successes, no run is left ``running``, and every succeeded run's accounting holds.
The first collect trial kills while the new schema's tables are being created (table creation must heal).

Every trial runs at the same lakehouse path, restored from a snapshot taken before the stage in the
uninterrupted run (the embedded metastore stores absolute table locations).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mfr.stages.registry import NAMES

REPO = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "lib"), str(REPO)]))  # this checkout's package first
    return env


def _teacher(root: Path) -> tuple[subprocess.Popen, str]:
    from tests.openai_server import spawn

    return spawn(root, "--latency-mean", "0.05", "--capacity", "64", env=_env())


def _driver(config: Path, stage: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.crash_driver", str(config), stage], cwd=REPO, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def _finish(config: Path, stage: str) -> dict:
    proc = _driver(config, stage)
    out, _ = proc.communicate(timeout=900)
    line = next((ln for ln in out.splitlines() if ln.startswith("STATE ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{stage} driver failed (exit {proc.returncode}): {out[-2000:]}")
    return json.loads(line[len("STATE "):])


def _kill(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the driver machine dies: Python, JVM and workers at once
    proc.wait(60)


def _restore(snapshot: Path, lake: Path) -> None:
    shutil.rmtree(lake, ignore_errors=True)
    if snapshot.exists():
        shutil.copytree(snapshot, lake, symlinks=True)


def _recovered(got: dict, ref: dict, upto: str) -> tuple[bool, str]:
    for stage in NAMES[: NAMES.index(upto) + 1]:
        if got["tables"].get(stage) != ref["tables"].get(stage):
            return False, f"{stage} differs: {got['tables'].get(stage)} vs {ref['tables'].get(stage)}"
    for key in ("duplicate_keys", "double_successes", "running"):
        if got[key]:
            return False, f"{key}={got[key]}"
    if not got["accounting_ok"]:
        return False, "accounting"
    return True, "ok"


def run(spark, make_cfg, workdir: Path, rows: int = 30, trials: int = 5, seed: int = 7,
        stages: list[str] | None = None) -> dict[str, float]:
    from mfr.sample.synthetic import write_sample

    root = workdir / "crash"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    dump = root / "dump"
    write_sample(dump, rows)
    lake = root / "lake"
    server, url = _teacher(root)
    config = root / "crash.yaml"
    teacher = {"api_base": url, "max_concurrency": 8, "backoff_base_s": 0.01}
    config.write_text(yaml.safe_dump({
        "lakehouse": {"warehouse": str(lake)},
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "collection": {"source": str(dump)},
        "distillation": {"overwrite": True, "cot": {"client": {**teacher, "model": "cot-model"}},
                         "caption": {"client": {**teacher, "model": "caption-model"}}},
        "llm": {"progress_interval_s": 1.0},
        "export": {"out": str(lake / "export"), "overwrite": True},
    }))
    rng = random.Random(seed)
    try:
        durations: dict[str, float] = {}
        for stage in NAMES:  # the uninterrupted run, a snapshot before each stage
            if lake.exists():
                shutil.copytree(lake, root / f"snap-{stage}", symlinks=True)
            start = time.monotonic()
            _finish(config, stage)
            durations[stage] = time.monotonic() - start
        ref = _finish(config, "-")
        print(f"uninterrupted: {', '.join(f'{s} {d:.0f}s' for s, d in durations.items())}", file=sys.stderr)
        total = recovered = duplicates = abandoned = 0
        # drawn for every stage, so the trials of a stage kill at the same moments whichever stages run
        moments = {stage: [rng.uniform(0.15, 0.95) * durations[stage] for _ in range(trials)] for stage in NAMES}
        for stage in NAMES:
            if stages and stage not in stages:
                continue
            for trial in range(trials):
                _restore(root / f"snap-{stage}", lake)
                proc = _driver(config, stage)
                creating = stage == "collect" and trial == 0
                moment = moments[stage][trial]
                start = time.monotonic()
                while proc.poll() is None and time.monotonic() - start < (durations[stage] if creating else moment):
                    if creating and list(lake.rglob("runs/_delta_log/*.json")):
                        break  # the schema's first table is being created
                    time.sleep(0.02)
                when = time.monotonic() - start
                _kill(proc)
                got = _finish(config, stage)
                ok, why = _recovered(got, ref, stage)
                total += 1
                recovered += ok
                duplicates += got["duplicate_keys"] + got["double_successes"]
                abandoned += got["abandoned"]
                print(f"{stage} trial {trial}: killed at {when:.1f}s → {why}", file=sys.stderr)
    finally:
        server.kill()
    suffix = "" if not stages else "." + "+".join(s for s in NAMES if s in stages)  # a partial run: its own figures
    return {
        f"reliability.kill_trials{suffix}": float(total),
        f"reliability.recovered{suffix}": float(recovered),
        f"reliability.duplicates{suffix}": float(duplicates),
        f"reliability.abandoned_marked{suffix}": float(abandoned),
    }
