"""The notebooks run, top to bottom, in one real Jupyter kernel against a lakehouse built from the
synthetic sample (the kernel's own Spark session: one JVM for all of them)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow  # a kernel, a lakehouse and four notebooks: `make test-slow`
def test_notebooks_execute(tmp_path):
    _execute_notebooks(tmp_path, {"master": "local[2]", "shuffle_partitions": 2})


@pytest.mark.slow
def test_notebooks_execute_over_spark_connect(connect_server, tmp_path):
    """As in Databricks' standard access mode: the notebooks' session is a Spark Connect client (no
    SparkContext, no JVM) and every helper they call (SQL, history, time travel, restore, report) works."""
    pytest.importorskip("grpc")
    _execute_notebooks(tmp_path, {"remote": connect_server, "shuffle_partitions": 2},
                       "from mfr.session import is_connect\nassert is_connect(lake.spark)\n")


def _execute_notebooks(tmp_path, spark_section: dict, check: str = "") -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.manager import KernelManager

    assert len(NOTEBOOKS) >= 4
    # the kernel builds its own lakehouse (own warehouse and metastore: no lock shared with the test session)
    conf = tmp_path / "nb.yaml"
    conf.write_text(yaml.safe_dump({
        "lakehouse": {"warehouse": str(tmp_path / "lh"), "schema": "nb"},
        "spark": spark_section,
        "collection": {"source": str(tmp_path / "lh" / "sample-dump")},
        "export": {"out": str(tmp_path / "lh" / "export"), "overwrite": True, "rl": {"rows": 5}},
    }))
    env = {**os.environ, "MFR_CONFIG": str(conf), "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    km = KernelManager(kernel_name="python3")
    km.kernel_spec_manager.whitelist = set()
    km.start_kernel(env=env, cwd=str(NOTEBOOKS[0].parent))
    try:
        build = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "from mfr.notebook import open_lakehouse\n"
            "from mfr.pipeline import run_pipeline\n"
            "from mfr.sample.synthetic import write_sample\n"
            "lake = open_lakehouse()\n"
            "write_sample(lake.cfg.get('collection.source'), 60)\n"
            "results = run_pipeline(lake.cfg, spark=lake.spark)\n"
            "assert [r.stage for r in results] == ['collect', 'clean', 'distill', 'select', 'export']\n" + check
        )])
        nbclient.NotebookClient(build, km=km, timeout=600).execute()
        for path in NOTEBOOKS:
            nb = nbformat.read(path, as_version=4)
            nbclient.NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(path.parent)}}).execute()
            outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
            assert not [o for o in outputs if o.get("output_type") == "error"], path.name
            assert outputs, f"{path.name} produced no output"
            if path.name.startswith("03"):
                html = "".join(o.get("data", {}).get("text/html", "") for o in outputs)
                assert "data:image/" in html  # images inline
            if path.name.startswith("04"):
                assert sum("image/png" in o.get("data", {}) for o in outputs) >= 5
    finally:
        km.shutdown_kernel(now=True)
