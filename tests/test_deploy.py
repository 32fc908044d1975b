"""Deployment kits: the wheel carries what an installed mfr needs; the Databricks bundle's tasks call it right."""

from __future__ import annotations

import configparser
import json
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from mfr.cli import build_parser
from mfr.config import load_config
from mfr.stages.registry import NAMES

REPO = Path(__file__).resolve().parents[1]


def test_the_pure_wheel_ships_prompts_config_and_recipe(wheel: Path) -> None:
    assert wheel.name.endswith("-py3-none-any.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for prompt in (REPO / "prompts").glob("*.txt"):
        assert f"mfr/_data/prompts/{prompt.name}" in names
    assert {"mfr/_data/conf/local.yaml", "mfr/_data/conf/llamafactory/mfr_8b.yaml", "mfr/jobs.py", "mfr/py.typed"} <= names
    assert not any(n.endswith((".so", ".pyd")) or "constraints" in n for n in names)  # pure: no compiled kernel


def _entry_points(wheel: Path) -> configparser.ConfigParser:
    with zipfile.ZipFile(wheel) as z:
        text = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return parser


def _resolve(value: str, variables: dict[str, str]) -> str:
    value = re.sub(r"\$\{var\.(\w+)\}", lambda m: str(variables[m.group(1)]), value)
    return re.sub(r"\{\{job\.parameters\.(\w+)\}\}", lambda m: str(variables[f"job.{m.group(1)}"]), value)


def test_bundle_runs_every_stage_in_order_through_the_wheels_entry_point(wheel: Path) -> None:
    bundle = yaml.safe_load((REPO / "databricks.yml").read_text())
    variables = {k: v.get("default") for k, v in bundle["variables"].items()}
    job = bundle["resources"]["jobs"]["mfr_pipeline"]
    variables.update({f"job.{p['name']}": p["default"] for p in job["parameters"]})
    tasks = job["tasks"]
    assert [t["task_key"] for t in tasks] == list(NAMES)
    for before, task in zip(tasks, tasks[1:]):
        assert task["depends_on"] == [{"task_key": before["task_key"]}]
    scripts = _entry_points(wheel)["console_scripts"]
    assert bundle["artifacts"]["mfr_wheel"]["type"] == "whl"
    for task in tasks:
        wt = task["python_wheel_task"]
        assert wt["package_name"] == "mfr" and wt["entry_point"] in scripts
        assert scripts[wt["entry_point"]].strip() == "mfr.cli:main"
        argv = [_resolve(p, variables) for p in wt["parameters"]]
        args = build_parser().parse_args(argv)
        assert args.command == "run" and args.stage == task["task_key"]
        cfg = load_config(None, args.overrides)  # every --set names a real key with a valid value
        assert cfg.settings.lakehouse.catalog == variables["catalog"]
        assert cfg.settings.llm.staging_dir.startswith("/Volumes/")
    for target in bundle["targets"].values():
        assert set(target.get("variables", {})) <= set(bundle["variables"])
    keys = {k for t in [job] for c in t["job_clusters"] for k in c["new_cluster"]["spark_env_vars"]}
    example = yaml.safe_load((REPO / "conf" / "cluster.example.yaml").read_text())
    named = {s["client"]["api_key_env"] for s in (example["distillation"]["cot"], example["distillation"]["caption"],
                                                   example["selection"]["difficulty"])} | {example["cleaning"]["llm_client"]["api_key_env"]}
    assert named <= keys  # every key the example config names comes from the secret scope


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a venv installed from the wheel, then the whole pipeline in it
def test_installed_wheel_runs_outside_the_checkout(installed_wheel) -> None:
    """A new venv with the wheel (and [spark40]) runs sample, the whole pipeline and the report from another folder."""
    out = installed_wheel.outputs
    assert "mfr 0." in out["--version"]
    assert '"stage": "export"' in out["run"]
    assert [r["stage"] for r in json.loads(out["run"])["runs"]] == list(NAMES)
    assert (installed_wheel.work / "out" / "export" / "llamafactory" / "mfr_8b.yaml").is_file()
    assert "report:" in out["report"]
    assert not (installed_wheel.work / "prompts").exists()  # the prompts came from the package


@pytest.mark.slow
@pytest.mark.timeout(900)  # make package builds a wheel and a venv, then a driver and an executor JVM on local-cluster (~170 s)
def test_packed_venv_runs_a_stage_under_spark_submit_from_outside_the_checkout(tmp_path: Path, synthetic_dump: Path,
                                                                                spark) -> None:
    """`make package` → the archive is the executors' Python (--archives …#environment) and, unpacked, the
    driver's: the stage runs on an executor JVM of its own (local-cluster: the UDFs and writes survive real
    serialization) with nothing from the checkout on the path. Delta, its jars and the catalog come from the
    spark-defaults `make setup` wrote, as a cluster's own defaults would give them; then a plain reader sees
    the table and the run log it wrote (the console script reading a lakehouse: the installed-wheel test)."""
    import pyspark

    dist = tmp_path / "dist"
    subprocess.run(["make", "-C", str(REPO), "package", f"DIST={dist}"], check=True, capture_output=True, timeout=1200)
    archive = dist / "mfr-env.tar.gz"
    driver_env = tmp_path / "driver-env"
    driver_env.mkdir()
    subprocess.run(["tar", "-xzf", str(archive), "-C", str(driver_env)], check=True)
    away = tmp_path / "away"
    away.mkdir()
    (away / "collect.py").write_text((REPO / "jobs" / "collect.py").read_text())
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON")}
    env["SPARK_HOME"] = str(Path(pyspark.__file__).parent)
    warehouse = tmp_path / "lh"
    sets = ["--set", f"lakehouse.warehouse={warehouse}", "--set", f"collection.source={synthetic_dump}",
            "--set", f"lakehouse.location={warehouse / 'schema-here'}"]
    # one executor: a second on this host added ~20 s (82 s against 99–109 s, the spark-submit alone) and
    # nothing mfr does differs between them
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "spark-submit"), "--master", "local-cluster[1,1,1024]",
         "--archives", f"{archive}#environment",
         "--conf", "spark.pyspark.python=./environment/bin/python",
         "--conf", f"spark.pyspark.driver.python={driver_env / 'bin' / 'python'}",
         "collect.py", *sets, "--json"],
        cwd=away, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    (run,) = summary["runs"]
    assert (run["rows_in"], run["rows_kept"], run["rows_quarantined"]) == (90, 88, 1)
    table = warehouse / "schema-here" / "collected"
    assert (table / "_delta_log").is_dir()  # lakehouse.location was the schema's
    assert spark.read.format("delta").load(str(table)).count() == 89
    runs = spark.read.format("delta").load(str(warehouse / "schema-here" / "runs")).collect()
    assert [(x["stage"], x["status"], x["output_version"]) for x in runs] == [("collect", "succeeded", 0)]
