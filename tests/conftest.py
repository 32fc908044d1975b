"""Shared fixtures: one local Spark session for the whole run, a fresh schema per test."""

from __future__ import annotations

import json
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

# Sessions the suites build themselves (this process's, the Connect server's) run without whole-stage code
# generation: on tables of a few dozen rows compiling each plan's Java costs more than it saves (measured:
# collect → select 15 % faster). Results are the same by Spark's contract; the CLI, demo, wheel and S3 suites
# run mfr's own settings, code generation included.
TEST_SPARK_CONF = {"spark.sql.codegen.wholeStage": "false"}


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lakehouse")


@pytest.fixture(scope="session")
def spark(warehouse: Path):
    from mfr.config import load_config
    from mfr.session import get_spark

    cfg = load_config(
        overrides=[f"lakehouse.warehouse={warehouse}", "spark.master=local[2]", "spark.shuffle_partitions=2",
                   "spark.conf=" + json.dumps({"spark.driver.memory": "2g", **TEST_SPARK_CONF})]
    )
    session = get_spark(cfg)
    yield session
    session.stop()


def schema_cfg(warehouse: Path, schema: str, *overrides: str):
    """Config of the suite's session (local[2], 2 shuffle partitions) on its own schema."""
    from mfr.config import load_config

    return load_config(overrides=[f"lakehouse.warehouse={warehouse}", f"lakehouse.schema={schema}", "spark.master=local[2]",
                                  "spark.shuffle_partitions=2", *overrides])


@pytest.fixture
def make_cfg(warehouse: Path):
    """Config with the test's own schema, so tests never see each other's tables."""
    schema = f"t_{uuid.uuid4().hex[:10]}"
    return lambda *overrides: schema_cfg(warehouse, schema, *overrides)


@pytest.fixture(scope="module")
def module_collected(spark, warehouse: Path, synthetic_dump: Path):
    """The synthetic dump collected once per test module, in the module's own schema: for tests that read
    it, or write later stages and read back the versions their own runs wrote."""
    from mfr.runner import run_stage

    cfg = schema_cfg(warehouse, f"m_{uuid.uuid4().hex[:10]}", f"collection.source={synthetic_dump}")
    run_stage(spark, cfg, "collect")
    return cfg


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
    from mfr.runner import run_stage
    from tests.openai_server import OpenAIServer, dump_shaped_responder, gold_answers

    cfg = schema_cfg(warehouse, "shared_pipeline", f"collection.source={synthetic_dump}")
    gold = gold_answers(synthetic_dump)
    with OpenAIServer(responder=lambda body, i, words: dump_shaped_responder(body, i, words, gold)) as teacher:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"), ("backoff_base_s", 0.01))]
        for stage in ("collect", "clean", "distill", "select"):
            run_stage(spark, cfg.with_overrides(sets), stage)
    return cfg


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory: pytest.TempPathFactory):
    """One local Spark Connect server (Delta, the embedded metastore) per pytest process, shared by the tests
    that use one (each on its own schema); yields its sc:// URL."""
    import pyspark

    from mfr.session import _local_confs, delta_jars, jars_dir
    from tests.local_ports import free_port, wait_for_port

    # pip pyspark 4.x ships the server; for 3.5 `python -m mfr.jars --connect` fetches it beside the Delta jars
    found = [*(Path(pyspark.__file__).parent / "jars").glob("spark-connect_*.jar"), *(jars_dir() / "connect").glob("*.jar")]
    connect_jar = found[0] if found else None
    if connect_jar is None:
        pytest.skip("this pyspark ships no Spark Connect server jar (python -m mfr.jars --connect fetches it)")
    where = tmp_path_factory.mktemp("connect")
    port = free_port()
    confs = _local_confs(where / "server", 2)
    confs.update({**TEST_SPARK_CONF, "spark.connect.grpc.binding.port": str(port), "spark.master": "local[2]",
                  "spark.jars": ",".join([*delta_jars(), str(connect_jar)])})  # 3.5 loads the server from here
    args = [str(Path(sys.executable).parent / "spark-submit"), "--class",
            "org.apache.spark.sql.connect.service.SparkConnectServer"]
    for k, v in confs.items():
        args += ["--conf", f"{k}={v}"]
    log = open(where / "server.log", "w")  # noqa: SIM115 - the server outlives this block
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "SPARK_LOCAL_IP": "127.0.0.1"}
    proc = subprocess.Popen([*args, str(connect_jar)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=where)
    wait_for_port(port, proc, where / "server.log", "Connect server", 180)
    yield f"sc://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def connect_funnel(connect_server: str, synthetic_dump: Path, tmp_path_factory: pytest.TempPathFactory):
    """The golden funnel's pipeline (default config, no endpoints) run once over the shared Connect server by a
    client that refuses settings as serverless does (schema ``connect_golden``). The funnel test checks its
    lines; the notebooks and the model-call test then work on the lakehouse it left."""
    from types import SimpleNamespace

    pytest.importorskip("grpc")
    scratch = tmp_path_factory.mktemp("connect-funnel")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lib"), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "connect_funnel.py"), connect_server,
                          str(synthetic_dump), str(scratch)], capture_output=True, text=True, timeout=1200, env=env)
    return SimpleNamespace(proc=out, url=connect_server, scratch=scratch, schema="connect_golden",
                           warehouse=scratch / "client", staging=scratch / "staging", export=scratch / "export")


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pure wheel (`make wheel`), built once per pytest process."""
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "MFR_PURE_WHEEL": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(REPO)],
                   check=True, env=env, cwd=tmp_path_factory.mktemp("build"), timeout=600)
    (found,) = out.glob("mfr-*.whl")
    return found


@pytest.fixture(scope="session")
def installed_wheel(wheel: Path, tmp_path_factory: pytest.TempPathFactory):
    """A new venv with the wheel and the extra of the default leg's Spark line ([spark40]), then, from a folder outside the checkout, as a user
    would: `mfr --version`, `mfr sample`, `mfr run --stage all --json` and `mfr report`. The deploy test checks
    what they printed and wrote; the notebooks then open the lakehouse they left (one pipeline build for both)."""
    from types import SimpleNamespace

    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    constraints = REPO / "conf" / "constraints" / "spark-4.0.txt"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-compile", f"{wheel}[spark40]", "-c", str(constraints)],
                   check=True, timeout=1200)
    work = root / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MFR_CONFIG")}
    env.update({"PYSPARK_PYTHON": str(py), "PYSPARK_DRIVER_PYTHON": str(py), "MFR_JARS_DIR": str(REPO / ".jars")})
    outputs = {}
    for name, argv in (("--version", ["--version"]), ("sample", ["sample", "--rows", "60", "--out", "lakehouse/sample-dump"]),
                       ("run", ["run", "--stage", "all", "--json", "--set", "export.out=out/export"]), ("report", ["report"])):
        out = subprocess.run([str(venv / "bin" / "mfr"), *argv], cwd=work, env=env, capture_output=True, text=True,
                             timeout=1200)
        assert out.returncode == 0, f"mfr {name}: {out.stderr[-3000:]}"
        outputs[name] = out.stdout
    return SimpleNamespace(work=work, outputs=outputs, warehouse=work / "lakehouse", export=work / "out" / "export")


# The model-call test over Connect distills the Connect funnel's lakehouse again (every row, through a test
# teacher); the notebooks read what the funnel left (notebook 02 needs the dump's pass rates), so it runs last.
LAST = ("test_model_calls_over_spark_connect_store_each_result_once_while_calls_continue",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    last = [item for item in items if item.name in LAST]
    items[:] = [item for item in items if item.name not in LAST] + last


# Where a run's minutes went by suite (CI runs make test's and make test-slow's tests in one process): each test's
# setup, call and teardown, by its marker; a fixture's build counts for the first test that needs it.
_SPENT = {"make test": 0.0, "make test-slow": 0.0}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _SPENT["make test-slow" if "slow" in report.keywords else "make test"] += report.duration


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 - pytest's TerminalReporter
    if all(_SPENT.values()):
        terminalreporter.write_line("time in tests: " + ", ".join(f"{k}'s {v:.0f} s" for k, v in _SPENT.items()))
