"""The notebooks run, top to bottom, in one real Jupyter kernel (its own Spark session: one JVM, or one Connect
client, for all of them): on classic Spark against the lakehouse the installed wheel's `mfr run --stage all`
left, over Spark Connect against the one the Connect golden funnel left."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.slow  # a kernel and four notebooks: `make test-slow`
@pytest.mark.timeout(1200)  # run alone, it waits for the installed wheel's venv and pipeline too
def test_notebooks_execute(installed_wheel, tmp_path):
    """On classic Spark, against the lakehouse the installed wheel's `mfr run --stage all` left."""
    _execute_notebooks(tmp_path, {"master": "local[2]", "shuffle_partitions": 2},
                       lakehouse={"warehouse": str(installed_wheel.warehouse), "schema": "mfr"},
                       export=str(installed_wheel.export))


@pytest.mark.slow
@pytest.mark.timeout(1200)  # run alone, it waits for the Connect funnel's pipeline too
def test_notebooks_execute_over_spark_connect(connect_funnel, tmp_path):
    """As in Databricks' standard access mode: the notebooks' session is a Spark Connect client (no
    SparkContext, no JVM) and every helper they call (SQL, history, time travel, restore, report) works."""
    assert connect_funnel.proc.returncode == 0, connect_funnel.proc.stderr[-3000:]
    _execute_notebooks(tmp_path, {"remote": connect_funnel.url, "shuffle_partitions": 2},
                       "from mfr.session import is_connect\nassert is_connect(lake.spark)\n",
                       lakehouse={"warehouse": str(connect_funnel.warehouse), "schema": connect_funnel.schema},
                       staging=str(connect_funnel.staging), export=str(connect_funnel.export))


def _execute_notebooks(tmp_path, spark_section: dict, check: str = "", lakehouse: dict | None = None,
                       staging: str | None = None, export: str | None = None) -> None:
    """The notebooks on ``lakehouse`` (warehouse and schema of a built one), else on one the kernel builds first."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from jupyter_client.manager import KernelManager

    assert len(NOTEBOOKS) >= 4
    # a warehouse and metastore of the kernel's own (no lock shared with the test session), or a Connect server's
    conf = tmp_path / "nb.yaml"
    settings = {
        "lakehouse": lakehouse or {"warehouse": str(tmp_path / "lh"), "schema": "nb"},
        "spark": spark_section,
        "collection": {"source": str(tmp_path / "lh" / "sample-dump")},
        "export": {"out": export or str(tmp_path / "lh" / "export"), "overwrite": True, "rl": {"rows": 5}},
    }
    if staging:
        settings["llm"] = {"staging_dir": staging}
    conf.write_text(yaml.safe_dump(settings))
    env = {**os.environ, "MFR_CONFIG": str(conf), "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    km = KernelManager(kernel_name="python3")
    km.kernel_spec_manager.whitelist = set()
    km.start_kernel(env=env, cwd=str(NOTEBOOKS[0].parent))
    try:
        code = "from mfr.notebook import open_lakehouse\nlake = open_lakehouse()\n"
        if lakehouse is None:
            code += ("from mfr.pipeline import run_pipeline\n"
                     "from mfr.sample.synthetic import write_sample\n"
                     "write_sample(lake.cfg.get('collection.source'), 60)\n"
                     "results = run_pipeline(lake.cfg, spark=lake.spark)\n"
                     "assert [r.stage for r in results] == ['collect', 'clean', 'distill', 'select', 'export']\n")
        build = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code + check)])
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
