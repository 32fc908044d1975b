"""The `mfr` CLI in-process (sql, history, sample) and against a metastore another process holds (spark-submit on
local-cluster, then the console script on what it wrote: tests/test_deploy.py, with the packed venv)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mfr.cli import main

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


@pytest.fixture
def collected(module_collected):
    """One collect per module; the only write a test makes (an UPDATE) leaves every value as it was."""
    return module_collected


def test_sql_json_time_travel_and_binary(collected, capsys):
    schema = collected.get("lakehouse.schema")
    assert main(["sql", "--json", f"SELECT count(*) AS n FROM {schema}.collected VERSION AS OF 0", "--set", f"lakehouse.schema={schema}"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 89}]
    main(["sql", "--json", f"SELECT image_id, bytes FROM {schema}.images ORDER BY image_id LIMIT 1"])
    row = json.loads(capsys.readouterr().out)[0]
    import hashlib

    assert hashlib.sha256(base64.b64decode(row["bytes"])).hexdigest() == row["image_id"]
    main(["sql", f"DESCRIBE HISTORY {schema}.collected"])
    out = capsys.readouterr().out
    assert "| version" in out and "WRITE" in out or "CREATE" in out


def test_history_lists_runs(collected, capsys):
    schema = collected.get("lakehouse.schema")
    assert main(["history", "--json", "--set", f"lakehouse.schema={schema}"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert [(x["stage"], x["status"], x["output_version"], x["rows_in"]) for x in runs] == [("collect", "succeeded", 0, 90)]
    assert main(["history", "collect", "--set", f"lakehouse.schema={schema}"]) == 0
    assert "collect" in capsys.readouterr().out


def test_the_demos_suggested_commands_run_as_printed(collected, capsys):
    """What `make demo` prints under "Try:" parses and answers, with the demo's own --set options carried."""
    import shlex

    from mfr.demo import try_commands

    schema = collected.get("lakehouse.schema")
    lines = try_commands("mfr", [f"lakehouse.schema={schema}"], schema)
    assert len(lines) == 4
    outputs = []
    for line in lines:
        argv = shlex.split(line)
        assert argv[0] == "mfr"
        capsys.readouterr()
        assert main(argv[1:]) == 0, line
        outputs.append(capsys.readouterr().out)
    assert "collect" in outputs[0] and "succeeded" in outputs[0]
    assert json.loads(outputs[2]) == [{"n": 89}]
    # a value with spaces stays one argument
    assert shlex.split(try_commands(".venv/bin/mfr", ["lakehouse.warehouse=/tmp/a b"], "mfr")[0]) == [
        ".venv/bin/mfr", "history", "--set", "lakehouse.warehouse=/tmp/a b"]


def test_cli_errors_are_clear(capsys, tmp_path):
    assert main(["run", "--stage", "collect", "--set", "collection.nope=1"]) == 2
    assert "unknown key 'collection.nope'" in capsys.readouterr().err
    assert main(["run", "--stage", "clean", "--set", f"lakehouse.schema=t_empty_{os.getpid()}"]) == 2
    assert "collected, which no finished run has written yet: run its stage first" in capsys.readouterr().err


def test_sample_command(tmp_path, capsys):
    assert main(["sample", "--rows", "12", "--out", str(tmp_path / "d")]) == 0
    assert "wrote 12 rows" in capsys.readouterr().out
    assert len(list((tmp_path / "d").rglob("*.parquet"))) == 3


def _env(warehouse: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1")
    return env


@pytest.mark.slow
def test_a_second_command_while_the_metastore_is_held_says_so(tmp_path):
    """The embedded Derby metastore admits one process: the second one gets one line saying so, exit 2."""
    warehouse = tmp_path / "lh"
    holder_code = (
        "import sys, time\n"
        "from mfr.config import load_config\n"
        "from mfr.session import get_spark\n"
        f"spark = get_spark(load_config(overrides=['lakehouse.warehouse={warehouse}', 'spark.master=local[1]']))\n"
        "spark.sql('CREATE SCHEMA IF NOT EXISTS mfr').collect()\n"
        "print('ready', flush=True)\n"
        "time.sleep(300)\n"
    )
    env = _env(warehouse)
    holder = subprocess.Popen([sys.executable, "-c", holder_code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              text=True, env=env, cwd=tmp_path)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        proc = subprocess.run([str(BIN / "mfr"), "sql", "SHOW TABLES IN mfr", "--set", f"lakehouse.warehouse={warehouse}"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mfr: another mfr command holds the embedded metastore"), proc.stderr[-2000:]


def test_sql_that_writes_waits_for_a_held_lakehouse_and_reads_do_not(collected, spark, capsys):
    from mfr.lakehouse import Lakehouse
    from mfr.writer_lock import lock_path

    schema = collected.get("lakehouse.schema")
    sets = ["--set", f"lakehouse.schema={schema}", "--set", f"lakehouse.warehouse={collected.get('lakehouse.warehouse')}",
            "--set", "runs.single_writer=true"]
    lh = Lakehouse(spark, collected)
    lock = lock_path(lh.staging_root)
    before = lh.current_version("collected")
    lh.storage.write_text(lock, json.dumps({"holder": "20990101T000000-distill-abcdef", "host": "elsewhere", "pid": 1,
                                            "at": time.time()}))
    try:
        update = f"UPDATE {schema}.collected SET answer = answer WHERE sample_key IS NOT NULL"  # a commit, same values
        assert main(["sql", update, *sets]) == 2
        assert "mfr: busy: the lakehouse is held by run 20990101T000000-distill-abcdef" in capsys.readouterr().err
        assert lh.current_version("collected") == before
        assert main(["sql", "--json", f"SELECT count(*) AS n FROM {schema}.collected", *sets]) == 0  # reads go on
        assert json.loads(capsys.readouterr().out) == [{"n": 89}]
    finally:
        lh.storage.delete(lock)
    assert main(["sql", update, *sets]) == 0
    assert lh.current_version("collected") == before + 1
    assert not lh.storage.exists(lock)


def _offline_package(where: Path) -> dict[str, str]:
    """Spark settings that resolve one Maven package at session start (Ivy, as `spark.jars.packages` does for
    hadoop-aws), from a repository on disk: no network, and Ivy prints its lines as it always does."""
    import zipfile

    version = where / "m2" / "org" / "example" / "tiny" / "1.0"
    version.mkdir(parents=True)
    with zipfile.ZipFile(version / "tiny-1.0.jar", "w") as jar:
        jar.writestr("tiny.txt", "resolved at session start")
    (version / "tiny-1.0.pom").write_text(
        '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion><groupId>org.example'
        '</groupId><artifactId>tiny</artifactId><version>1.0</version><packaging>jar</packaging></project>')
    settings = where / "ivysettings.xml"
    settings.write_text(f'<ivysettings><settings defaultResolver="disk"/><resolvers><ibiblio name="disk" m2compatible="true" '
                        f'root="{(where / "m2").as_uri()}"/></resolvers></ivysettings>')
    return {"spark.jars.packages": "org.example:tiny:1.0", "spark.jars.ivySettings": str(settings),
            "spark.jars.ivy": str(where / "ivy-home")}


@pytest.mark.slow  # two commands, each with a JVM of its own (once, on the default leg: whatever a Spark line prints
# at start goes to the JVM's stdout, which mfr points at stderr before the JVM starts)
def test_json_output_is_the_document_alone_and_commands_chain_back_to_back(tmp_path):
    """`--json` prints only JSON on stdout although a package is resolved at session start (Ivy writes to the
    JVM's stdout); the next command, started the moment the first returns, finds the embedded metastore free.
    (`run --json`'s document is parsed whole by the installed-wheel and S3 tests.)"""
    import yaml

    conf = tmp_path / "with-package.yaml"
    conf.write_text(yaml.safe_dump({"lakehouse": {"warehouse": str(tmp_path / "lh")},
                                    "spark": {"master": "local[1]", "conf": _offline_package(tmp_path)}}))
    env = {**_env(tmp_path), "MFR_CONFIG": str(conf)}
    sql = subprocess.run([str(BIN / "mfr"), "sql", "--json", "SELECT 40 + 2 AS n, 'x' AS s"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert sql.returncode == 0, sql.stderr[-3000:]
    assert json.loads(sql.stdout) == [{"n": 42, "s": "x"}]
    assert "org.example#tiny" in sql.stderr  # the package really was resolved, and its lines went to stderr
    tables = subprocess.run([str(BIN / "mfr"), "sql", "--json", "SHOW TABLES IN mfr"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert tables.returncode == 0, tables.stderr[-3000:]  # not "another mfr command holds the embedded metastore"
    assert json.loads(tables.stdout) == []  # the schema the first command made, no table yet


def test_a_stage_registered_from_outside_runs_through_the_runner_and_the_cli(spark, collected, capsys):
    """A registry entry says all the runner needs: inputs pinned, accounting checked, the check after the
    write run, the run recorded; `mfr run --stage` and `mfr history` know the stage."""
    from mfr.lakehouse import Lakehouse
    from mfr.runlog import RunLog
    from mfr.runner import run_stage
    from mfr.stages import registry
    from tests.extra_stage import registered

    schema = collected.get("lakehouse.schema")
    lh = Lakehouse(spark, collected)
    with registered():
        first = run_stage(spark, collected, "question_words")
        kept = lh.read("collected").where("reject_reason IS NULL").count()
        assert (first.rows_in, first.rows_kept, first.rows_rejected) == (kept, kept, 0)
        assert first.metrics["question_words.mean"] > 3
        assert first.output_table == f"{schema}.question_words"
        capsys.readouterr()
        assert main(["run", "--stage", "question_words", "--json", "--set", f"lakehouse.schema={schema}"]) == 0
        (second,) = json.loads(capsys.readouterr().out)["runs"]
        assert second["stage"] == "question_words" and second["output_version"] == first.output_version + 1
        runs = RunLog(lh).list("question_words").collect()
        assert [(r["status"], r["input_versions"]) for r in runs] == [("succeeded", {"collected": 0})] * 2
        assert main(["history", "question_words", "--set", f"lakehouse.schema={schema}"]) == 0
    assert registry.NAMES == ["collect", "clean", "distill", "select", "export"]  # gone again after the block
    with pytest.raises(SystemExit) as refused:  # argparse's own refusal of a stage it does not know
        main(["run", "--stage", "question_words", "--set", f"lakehouse.schema={schema}"])
    assert refused.value.code == 2
