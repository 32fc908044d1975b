"""Shared fixtures: one local Spark session for the whole run, a fresh schema per test."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_SAMPLE = Path(os.environ.get("MFR_REAL_SAMPLE", REPO.parent / "shared" / "data" / "mmfr-real-sample"))

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def spark(warehouse: Path):
    from mfr.config import load_config
    from mfr.session import get_spark

    cfg = load_config(
        overrides=[f"lakehouse.warehouse={warehouse}", "spark.master=local[2]", "spark.shuffle_partitions=2",
                   "spark.conf={spark.driver.memory: 2g}"]
    )
    session = get_spark(cfg)
    yield session
    session.stop()


@pytest.fixture
def make_cfg(warehouse: Path):
    """Config with the test's own schema, so tests never see each other's tables."""
    from mfr.config import load_config

    schema = f"t_{uuid.uuid4().hex[:10]}"

    def make(*overrides: str):
        return load_config(
            overrides=[f"lakehouse.warehouse={warehouse}", f"lakehouse.schema={schema}", "spark.master=local[2]",
                       "spark.shuffle_partitions=2", *overrides]
        )

    return make


@pytest.fixture(scope="session")
def synthetic_dump(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mfr.sample.synthetic import write_sample

    out = tmp_path_factory.mktemp("dump") / "sample"
    write_sample(out, 90)
    return out


@pytest.fixture
def real_sample() -> Path:
    if not REAL_SAMPLE.is_dir():
        pytest.skip(f"real sample not present at {REAL_SAMPLE}")
    return REAL_SAMPLE


@pytest.fixture(scope="session")
def pipeline_cfg(spark, warehouse: Path, synthetic_dump: Path):
    """One lakehouse with every stage up to select run on the synthetic dump (shared, read-only); distill
    asks a test teacher that answers in the dump's shapes (thinking field, phased solution, markdown
    captions) and gives the gold answer."""
    from mfr.config import load_config
    from mfr.runner import run_stage
    from tests.openai_server import OpenAIServer, dump_shaped_responder, gold_answers

    cfg = load_config(
        overrides=[f"lakehouse.warehouse={warehouse}", "lakehouse.schema=shared_pipeline", "spark.master=local[2]",
                   "spark.shuffle_partitions=2", f"collection.source={synthetic_dump}"]
    )
    gold = gold_answers(synthetic_dump)
    with OpenAIServer(responder=lambda body, i, words: dump_shaped_responder(body, i, words, gold)) as teacher:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"), ("backoff_base_s", 0.01))]
        for stage in ("collect", "clean", "distill", "select"):
            run_stage(spark, cfg.with_overrides(sets), stage)
    return cfg


@pytest.fixture
def connect_server(tmp_path: Path):
    """A local Spark Connect server (Delta, the embedded metastore) for the test; yields its sc:// URL."""
    import pyspark

    from mfr.session import _local_confs, delta_jars, jars_dir
    from tests.local_ports import free_port, wait_for_port

    # pip pyspark 4.x ships the server; for 3.5 `python -m mfr.jars --connect` fetches it beside the Delta jars
    found = [*(Path(pyspark.__file__).parent / "jars").glob("spark-connect_*.jar"), *(jars_dir() / "connect").glob("*.jar")]
    connect_jar = found[0] if found else None
    if connect_jar is None:
        pytest.skip("this pyspark ships no Spark Connect server jar (python -m mfr.jars --connect fetches it)")
    port = free_port()
    confs = _local_confs(tmp_path / "server", 2)
    confs.update({"spark.connect.grpc.binding.port": str(port), "spark.master": "local[2]",
                  "spark.jars": ",".join([*delta_jars(), str(connect_jar)])})  # 3.5 loads the server from here
    args = [str(Path(sys.executable).parent / "spark-submit"), "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for k, v in confs.items():
        args += ["--conf", f"{k}={v}"]
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - the server outlives this block
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.Popen([*args, str(connect_jar)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    wait_for_port(port, proc, tmp_path / "server.log", "Connect server", 180)
    yield f"sc://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
