"""Folders of the driver's disk on a cluster whose executors run elsewhere (a real standalone master and
worker on this machine stand for EMR's YARN and Databricks' clusters)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mfr.storage import spark_path
from tests.local_ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given, told", [
    ("/data/staging", "file:/data/staging"),  # a bare path would be the cluster's default filesystem's
    ("file:///data/staging", "file:/data/staging"),
    ("/dbfs/tmp/x", "dbfs:/tmp/x"),
    ("dbfs:/tmp/x", "dbfs:/tmp/x"),
    ("/Volumes/main/mfr/staging/x", "/Volumes/main/mfr/staging/x"),  # Spark reads Volumes paths as they are
    ("s3a://bucket/x", "s3a://bucket/x"),
])
def test_paths_go_to_spark_with_their_filesystem_named(given, told):
    assert spark_path(given) == told


def test_a_relative_folder_goes_to_spark_from_where_mfr_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert spark_path("lakehouse/_llm") == f"file:{tmp_path}/lakehouse/_llm"


def test_local_folders_are_refused_only_where_no_executor_shares_them(spark, make_cfg):
    """The suite's session runs every executor here (local master): its folders pass, unless the config
    says they are not shared; a Volumes path always passes."""
    from mfr.lakehouse import Lakehouse
    from mfr.runner import check_executors_reach, check_storage
    from mfr.storage import StorageError

    cfg = make_cfg()
    check_executors_reach(spark, cfg, [("/some/local/folder", "export.out")])
    refused = make_cfg("spark.local_paths_shared=false")
    with pytest.raises(StorageError, match=r"^export\.out: /some/local/folder is a folder of this machine's disk, "
                                           r"which the executors \(local"):
        check_executors_reach(spark, refused, [("/some/local/folder", "export.out")])
    check_executors_reach(spark, refused, [("/Volumes/main/mfr/out", "export.out"), ("s3a://b/out", "export.out")])
    check_storage("distill", cfg, Lakehouse(spark, cfg))  # the default staging folder, local, passes here
    with pytest.raises(StorageError, match=r"^staging folder: .* is a folder of this machine's disk"):
        check_storage("distill", refused, Lakehouse(spark, refused))


def test_a_dump_on_the_drivers_disk_is_refused_where_executors_read_it_elsewhere(spark, make_cfg, synthetic_dump):
    """Collect's executors read the dump's files: a folder of this machine's disk (or the hub download's
    cache, for an hf:// dump) is refused before any write where they run elsewhere; shared storage passes."""
    from mfr.lakehouse import Lakehouse
    from mfr.runner import check_storage
    from mfr.storage import StorageError

    elsewhere = ("spark.local_paths_shared=false", "llm.staging_dir=s3a://bucket/staging")
    cfg = make_cfg(*elsewhere, f"collection.source={synthetic_dump}")
    with pytest.raises(StorageError, match=rf"^collection\.source: {synthetic_dump} is a folder of this machine's disk"):
        check_storage("collect", cfg, Lakehouse(spark, cfg))
    hub = make_cfg(*elsewhere, "collection.source=hf://datasets/org/name", "collection.cache_dir=/local/hf-cache")
    with pytest.raises(StorageError, match=r"^collection\.cache_dir: /local/hf-cache is a folder"):
        check_storage("collect", hub, Lakehouse(spark, hub))
    here = make_cfg(f"collection.source={synthetic_dump}")  # the suite's executors run here
    check_storage("collect", here, Lakehouse(spark, here))


@pytest.fixture
def standalone(tmp_path: Path):
    """A Spark standalone master and one worker (1 core, 1 GB) on 127.0.0.1, from the pip pyspark."""
    spark_class = str(Path(sys.executable).parent / "spark-class")
    port = free_port()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_WORKER_DIR": str(tmp_path / "work"),
           "PYSPARK_PYTHON": sys.executable}
    url = f"spark://127.0.0.1:{port}"
    logs = [open(tmp_path / f"{n}.log", "w") for n in ("master", "worker")]  # noqa: SIM115 - outlive this block
    procs = [subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(free_port())],
                              stdout=logs[0], stderr=subprocess.STDOUT, env=env, cwd=tmp_path)]
    wait_for_port(port, procs[0], tmp_path / "master.log", "standalone master", 120)
    procs.append(subprocess.Popen([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                                   "--cores", "1", "--memory", "1g", "--webui-port", str(free_port()), url],
                                  stdout=logs[1], stderr=subprocess.STDOUT, env=env, cwd=tmp_path))
    yield url
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
    for f in logs:
        f.close()


@pytest.mark.slow
def test_on_a_cluster_master_driver_folders_are_refused_and_shared_ones_reach_spark_as_files(standalone, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "lib"), os.environ.get("PYTHONPATH", "")]),
           "SPARK_LOCAL_IP": "127.0.0.1"}
    out = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "cluster_paths.py"), standalone,
                          str(tmp_path / "run")], capture_output=True, text=True, timeout=600, env=env,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-4000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["master"] == standalone and got["executors_here"] is False
    assert got["refused"].startswith(f"staging folder: {tmp_path / 'run' / 'lakehouse' / '_llm'} is a folder of this "
                                     f"machine's disk, which the executors ({standalone}) do not share")
    assert "spark.local_paths_shared=true" in got["refused"]
    # the worker's executor wrote the intermediate to this disk (a file: URI), not the default filesystem
    assert got["staged_rows"] == 1000 and got["staged_sum"] == 999 * 1000 and got["files_here"] >= 1
