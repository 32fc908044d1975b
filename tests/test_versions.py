"""Installed sets that run: Delta's jars per Spark line and pyarrow's NumPy floor, judged before a JVM starts;
each Spark line's extra resolves, in a fresh resolution, to a set that judgement accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfr.versions import EXTRAS, delta_jar, delta_problem, line, numpy_problem

REPO = Path(__file__).resolve().parents[1]


# (pyspark, delta-spark, runs): from the artifacts Maven Central lists (delta-spark_2.12/_2.13 up to Delta 4.0,
# delta-spark_<spark line>_2.13 from 4.1: the 4.0 and 4.1 builds exist for 4.1.0–4.4.0, the 4.2 build for 4.4.0)
@pytest.mark.parametrize("pyspark, delta, runs", [
    ("3.5.5", "3.3.2", True),
    ("3.5.0", "3.0.0", True),
    ("4.0.1", "4.0.0", True),
    ("4.0.1", "4.1.0", True),
    ("4.0.1", "4.4.0", True),
    ("4.1.1", "4.3.1", True),
    ("4.2.0", "4.4.0", True),
    ("4.2.1", "4.1.0", False),  # what `pip install 'mfr[local]' 'pyspark[connect]'` once resolved
    ("4.2.0", "4.3.1", False),
    ("4.1.1", "4.0.0", False),
    ("4.0.1", "3.3.2", False),
    ("3.5.5", "4.0.0", False),
    ("4.3.0", "4.4.0", False),  # a Spark line no Delta this table knows is built for
    ("4.2.0", "4.5.0", True),  # a Delta newer than the table: no verdict
])
def test_delta_runs_only_on_the_spark_lines_its_jars_are_built_for(pyspark, delta, runs):
    problem = delta_problem(pyspark, delta)
    assert (problem is None) == runs, problem
    if problem:
        assert "\n" not in problem and f"pyspark {pyspark}" in problem and f"delta-spark {delta}" in problem


def test_a_mismatch_names_the_delta_range_and_the_extra_of_the_installed_spark_line():
    assert delta_problem("4.2.1", "4.1.0") == (
        "delta-spark 4.1.0 has no jars for Spark 4.2 (pyspark 4.2.1 is installed; Delta 4.1 is built for Spark 4.0 "
        "and 4.1): pip install 'delta-spark>=4.4,<4.5,!=4.4.1' (or the whole tested set: pip install 'mfr[spark42]')")
    assert "pip install 'delta-spark>=3.3,<3.4'" in delta_problem("3.5.5", "4.0.0")
    assert "supports (Spark 3.5, Spark 4.0, Spark 4.1, Spark 4.2)" in delta_problem("4.3.0", "4.4.0")


def test_jars_fetched_for_another_spark_line_are_named():
    assert delta_jar(["/j/delta-storage-4.4.0.jar", "/j/delta-spark_4.2_2.13-4.4.0.jar"]) == ("4.4.0", (4, 2))
    assert delta_jar(["delta-spark_2.13-4.0.0.jar", "delta-storage-4.0.0.jar"]) == ("4.0.0", None)
    assert delta_jar(["delta-spark_2.12-3.3.2.jar"]) == ("3.3.2", None)
    assert delta_jar(["hadoop-aws-3.4.1.jar"]) is None
    problem = delta_problem("4.0.1", "4.4.0", jar_spark=(4, 2))
    assert problem is not None and problem.startswith("the Delta 4.4.0 jars are the Spark 4.2 build but pyspark 4.0.1")
    assert delta_problem("4.2.0", "4.4.0", jar_spark=(4, 2)) is None


@pytest.mark.parametrize("pyarrow, numpy, pyspark, fix", [
    ("26.0.1", "1.26.4", "3.5.5", "pip install 'pyarrow<26'"),  # Spark 3.5's pandas keeps NumPy 1: an older pyarrow
    ("26.0.0", "1.23.5", "4.2.0", "pip install 'numpy>=2'"),
    ("25.0.1", "1.26.4", "3.5.5", None),  # measured: 25.0.1 imports with numpy 1.26
    ("26.0.1", "2.4.6", "4.2.0", None),
    ("14.0.1", "1.23.5", "3.5.5", None),
])
def test_pyarrow_that_needs_numpy_2_is_named_with_the_fix_for_the_spark_line(pyarrow, numpy, pyspark, fix):
    problem = numpy_problem(pyarrow, numpy, pyspark)
    if fix is None:
        assert problem is None
    else:
        assert problem == f"pyarrow {pyarrow} needs NumPy 2 or newer but numpy {numpy} is installed: {fix}"


def test_versions_read_with_their_leading_numbers():
    assert line("4.2.1") == (4, 2) and line("3.5.0.dev0") == (3, 5) and line("4") == (4, 0)
    with pytest.raises(ValueError):
        line("latest")


def test_a_local_command_with_jars_of_another_spark_line_stops_in_one_line_before_any_jvm(tmp_path):
    """The jars folder holds Delta built for Spark 4.2 beside pyspark 4.0: one line, exit 2, no JVM, no table."""
    import pyspark

    jars = tmp_path / "jars"
    jars.mkdir()
    other = "4.1" if line(pyspark.__version__) != (4, 1) else "4.2"
    (jars / f"delta-spark_{other}_2.13-4.4.0.jar").write_bytes(b"")
    env = {**os.environ, "MFR_JARS_DIR": str(jars), "PYSPARK_PYTHON": sys.executable}
    started = time.monotonic()
    out = subprocess.run([str(Path(sys.executable).parent / "mfr"), "sql", "SELECT 1", "--set",
                          f"lakehouse.warehouse={tmp_path / 'lh'}"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("mfr:")]
    assert lines == [f"mfr: setup error: the Delta 4.4.0 jars are the Spark {other} build but pyspark "
                     f"{pyspark.__version__} is installed: fetch the matching ones (make setup, or python -m mfr.jars)"]
    assert not (tmp_path / "lh" / "metastore_db").exists()  # no JVM booted the metastore
    assert time.monotonic() - started < 60


def test_the_delta_a_session_loaded_is_read_from_its_jvm(spark):
    from importlib import metadata

    from mfr.session import check_jvm_delta, jvm_delta_version

    assert jvm_delta_version(spark) == metadata.version("delta-spark")  # make setup fetched the package's jars
    check_jvm_delta(spark)  # this leg's pair runs: no error


@pytest.mark.slow  # pip resolves each extra against PyPI (the four side by side: network-bound, ~20 s)
@pytest.mark.timeout(900)
def test_each_spark_line_extra_resolves_to_a_set_the_check_accepts(wheel, tmp_path):
    import re

    from mfr.versions import Installed

    resolving = {}
    for extra in sorted(EXTRAS.values()):
        report = tmp_path / f"{extra}.json"
        proc = subprocess.Popen([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                                 "--report", str(report), f"{wheel}[{extra}]"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        resolving[extra] = (proc, report)
    for extra, (proc, report) in resolving.items():
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, (extra, err[-3000:])
        resolved = {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"]  # PEP 503 names
                    for i in json.loads(report.read_text())["install"]}
        spark = line(resolved["pyspark"])
        assert EXTRAS[spark] == extra  # the extra installs its own line
        chosen = Installed(resolved["pyspark"], resolved["delta-spark"], None, resolved["pyarrow"], resolved["numpy"])
        assert chosen.problems() == [], (extra, resolved)
        print(extra, {k: resolved[k] for k in ("pyspark", "delta-spark", "numpy", "pandas", "pyarrow")})


def test_the_extras_pin_the_delta_ranges_the_check_names():
    """pyproject's per-line extras and mfr.versions' fix lines are two copies of one table: they must agree."""
    import tomllib

    from mfr.versions import DELTA_RANGES

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for spark, extra in EXTRAS.items():
        pins = [d.split("#")[0].strip() for d in extras[extra]]
        assert f"delta-spark{DELTA_RANGES[spark]}" in pins, (extra, pins)
        assert any(p.startswith(f"pyspark>={spark[0]}.{spark[1]}") for p in pins), (extra, pins)
    assert extras["local"] == [f"mfr[{EXTRAS[max(EXTRAS)]}]"]  # the newest line
