"""Object stores for real: a moto S3 server on 127.0.0.1 and hadoop-aws (``make test-s3``).

Every location a run writes is on ``s3a://``: the schema's tables (``lakehouse.location``), journals,
leases and intermediates (``llm.staging_dir``), the hub download cache and the export. The embedded Derby
metastore stays local, as on a laptop. Each run is the real CLI in its own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.hub_standin import HubStandIn
from tests.local_ports import server_quiet, wait_for
from tests.s3_server import KEYS, moto_bucket, storage_for

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parents[1]
BUCKET = "mfr-test"
JOURNAL_FLUSH_S = 2.0  # the README's promise for journals on object stores


def _s3_jars() -> list[str]:
    folder = Path(os.environ.get("MFR_S3_JARS", REPO / ".jars-s3"))
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not any("hadoop-aws" in j for j in jars):
        pytest.fail(f"no hadoop-aws jar under {folder}: run `make test-s3` (it fetches them)")
    return jars


@pytest.fixture(scope="module")
def s3():
    """The endpoint URL of a fresh moto server with one bucket."""
    with moto_bucket(BUCKET) as endpoint:
        yield endpoint


def _spark_conf(endpoint: str) -> dict[str, str]:
    return {
        "spark.jars": ",".join(_s3_jars()),
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        "spark.driver.memory": "2g",
    }


_storage = storage_for


def _config(tmp: Path, endpoint: str, name: str, **sections) -> Path:
    root = f"s3a://{BUCKET}/{name}"
    cfg = {
        "lakehouse": {"warehouse": str(tmp / "wh"), "schema": name.replace("-", "_"), "location": f"{root}/lake"},
        "spark": {"master": "local[2]", "shuffle_partitions": 2, "conf": _spark_conf(endpoint)},
        "llm": {"staging_dir": f"{root}/staging", "progress_interval_s": 0.5},
        "export": {"out": f"{root}/export"},
    }
    for section, values in sections.items():
        cfg.setdefault(section, {}).update(values)
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(KEYS)
    env.update(PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable, PYTHONUNBUFFERED="1", **extra)
    return env


def _mfr(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mfr.cli", *args], cwd=REPO, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def _sql(cfg: Path, *queries: str) -> list[list[dict]]:
    """Rows of each query, all in one session (one JVM start)."""
    out = subprocess.run([sys.executable, "-m", "tests.scripts.sql_many", str(cfg), *queries], cwd=REPO, env=_env(),
                         capture_output=True, text=True, timeout=600)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULTS ")), None)
    assert out.returncode == 0 and line, out.stderr[-3000:]
    return json.loads(line[len("RESULTS "):])


def _teacher_sets(url: str) -> list[str]:
    sets = []
    for p in ("cot", "caption"):
        sets += [f"distillation.{p}.client.api_base={url}", f"distillation.{p}.client.model={p}-model",
                 f"distillation.{p}.client.max_concurrency=8", f"distillation.{p}.client.backoff_base_s=0.01"]
    return sets


def _server_process(tmp_path: Path, latency: float, dump: Path):
    """A teacher of its own process answering in the dump's shapes (each question's gold answer): rows it
    distils pass select."""
    from tests.openai_server import spawn

    return spawn(tmp_path, "--latency-mean", str(latency), "--capacity", "64", "--responder", "dump",
                 "--answers-from", str(dump), env=_env())


def _stats(url: str) -> dict:
    with urllib.request.urlopen(url.replace("/v1", "/stats"), timeout=5) as r:
        return json.loads(r.read())


def _set_latency(url: str, seconds: float) -> None:
    req = urllib.request.Request(url.replace("/v1", "/settings"), json.dumps({"latency_mean_s": seconds}).encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


@pytest.mark.timeout(900)  # four commands, each a JVM of its own on S3, and a distill of ~170 slow calls
def test_the_whole_pipeline_on_s3_from_the_hub_refuses_a_second_driver_and_survives_a_sigkill(s3, tmp_path, synthetic_dump):
    """Every stage on S3, the dump read from the hub through a cache on S3. While the distill holds the
    lakehouse a second driver is refused (open-source Delta on S3 cannot keep two drivers' commits to one table
    apart); then the driver is killed mid-distill, and a rerun of the whole pipeline finishes it, asking again
    only what no journal on S3 had kept, and exports to S3."""
    from mfr.writer_lock import lock_path

    storage = _storage(s3)
    cache = f"s3a://{BUCKET}/hub-cache"
    # CoT and caption share the window of 8 (about 170 calls in all): ~2.7 calls/s, so the distill outlives the
    # second command's JVM start and the kill still lands mid-stage
    server, url = _server_process(tmp_path, latency=3.0, dump=synthetic_dump)
    cfg = _config(tmp_path, s3, "whole", collection={"source": "hf://datasets/org/mmfr", "cache_dir": cache},
                  distillation={"overwrite": True})
    sets = [x for s in _teacher_sets(url) for x in ("--set", s)]
    lock = lock_path(f"s3a://{BUCKET}/whole/staging")
    with HubStandIn({"org/mmfr": synthetic_dump}) as hub:
        env = _env(HF_ENDPOINT=hub.url)
        try:
            driver = subprocess.Popen([sys.executable, "-m", "mfr.cli", "run", "--stage", "all", "--config", str(cfg), *sets],
                                      cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for(lambda: _stats(url)["successes"] >= 5, 400, "the distill's first answers")
            holder = json.loads(storage.read_text(lock))["holder"]
            assert "-distill-" in holder
            # another cluster: its own metastore (the embedded Derby admits one command), the same tables on S3
            second = _mfr("run", "--stage", "collect", "--config", str(cfg), "--set",
                          f"lakehouse.warehouse={tmp_path / 'wh2'}", env=env, timeout=300)
            assert driver.poll() is None, "the distill ended before the second command was refused: slow the server"
            assert second.returncode == 2
            lines = [ln for ln in second.stderr.splitlines() if ln.startswith("mfr:")]
            assert len(lines) == 1 and lines[0].startswith(f"mfr: busy: the lakehouse is held by run {holder}"), second.stderr[-2000:]
            assert "S3DynamoDBLogStore" in lines[0]
            wait_for(lambda: _stats(url)["successes"] >= 40, 300, "40 answers before the kill")
            finished_early = _stats(url)["successes"]
            time.sleep(JOURNAL_FLUSH_S + 2)  # the journal's promise: a call is on S3 flush_s (+ one PUT) after it finished
            driver.send_signal(signal.SIGKILL)
            driver.wait(30)
            wait_for(lambda: server_quiet(lambda: _stats(url)), 60, "the killed driver's calls to end")
            before = _stats(url)
            assert 40 <= before["successes"] < 150, before  # killed mid-stage
            _set_latency(url, 0.002)  # the kill landed: the rerun needs no slow teacher (saves ~45 s of waiting)
            assert storage.list_files(f"s3a://{BUCKET}/whole/staging/journal", ".jsonl")  # nothing of it local
            rerun = _mfr("run", "--stage", "all", "--config", str(cfg), "--json", *sets, env=env)
            assert rerun.returncode == 0, rerun.stderr[-4000:]
            after = _stats(url)
        finally:
            server.kill()
    summary = json.loads(rerun.stdout)
    assert [r["stage"] for r in summary["runs"]] == ["collect", "clean", "distill", "select", "export"]
    for r in summary["runs"]:  # accounting holds at every stage
        assert r["rows_in"] == r["rows_kept"] + r["rows_rejected"] + r["rows_quarantined"], r
    distilled = summary["runs"][2]
    assert "pending_model" not in distilled["rejected_by_reason"], distilled  # every row the teacher was asked finished
    # the hub shards were cached on S3, and every table lives under the schema's s3a:// location
    assert len(storage.list_files(cache, ".parquet")) == len(list(synthetic_dump.rglob("*.parquet")))
    # (the Delta logs themselves, listed on S3: no JVM to start for a DESCRIBE DETAIL of each)
    for table in ("collected", "cleaned", "distilled", "selected", "exported", "runs", "llm_calls", "images"):
        assert storage.list_files(f"s3a://{BUCKET}/whole/lake/{table}/_delta_log", ".json"), table
    # the export is on S3: sharegpt parts, images, dataset_info, recipe, HF parquet and card
    exported = storage.list_files(f"s3a://{BUCKET}/whole/export")
    names = {f.rsplit("/", 1)[-1] for f in exported}
    assert {"dataset_info.json", "mfr_8b.yaml", "README.md", "EXPORT.json"} <= names
    kept = summary["runs"][-1]["rows_kept"]
    lines = sum(storage.read_text(f).count("\n") for f in exported if "/mfr_sft/" in f)
    assert kept > 0 and lines == kept
    assert any(f.endswith(".parquet") and "/hf/data/" in f for f in exported)
    saved, calls, runs = _sql(  # the lock's holder is the killed distill's run id
        cfg, f"SELECT count(DISTINCT request_key) AS n FROM whole.llm_calls WHERE status = 'ok' AND run_id = '{holder}'",
        "SELECT count(*) AS n, count(DISTINCT request_key) AS d FROM whole.llm_calls WHERE status = 'ok'",
        "SELECT stage, status, error FROM whole.runs ORDER BY started_at")
    # every call that finished in time was safe (the killed driver's journals on S3, or its commits): the
    # rerun stored them under the killed run and asked again only what none had kept
    assert saved[0]["n"] >= finished_early, (finished_early, saved)
    assert after["duplicate_successes"] <= before["successes"] - saved[0]["n"], (before, after, saved)
    assert calls[0]["n"] == calls[0]["d"]  # no request stored twice
    assert [(r["stage"], r["status"]) for r in runs] == [
        ("collect", "succeeded"), ("clean", "succeeded"), ("distill", "abandoned"),
        ("collect", "succeeded"), ("clean", "succeeded"), ("distill", "succeeded"), ("select", "succeeded"),
        ("export", "succeeded")]
    assert "gone" in runs[2]["error"]
    # journals stored and removed, the killed run's intermediates swept, leases released
    assert storage.list_files(f"s3a://{BUCKET}/whole/staging") == []


@pytest.mark.parametrize("case, expect", [
    ("no_bucket", "lakehouse.location: cannot write under s3a://no-such-bucket/lake: no such bucket"),
    ("unreachable", "lakehouse.location: cannot write under s3a://mfr-test/bad/lake: endpoint unreachable"),
    ("no_credentials", "lakehouse.location: cannot write under s3a://mfr-test/bad/lake: no credentials"),
    ("file", "llm.staging_dir: s3a://mfr-test/bad/afile is a file, not a folder"),
])
def test_bad_object_store_locations_are_one_line_naming_the_key(s3, tmp_path, monkeypatch, case, expect):
    from mfr.config import load_config
    from mfr.lakehouse import Lakehouse
    from mfr.runner import check_storage
    from mfr.storage import StorageError

    _storage(s3).write_text(f"s3a://{BUCKET}/bad/afile", "x")
    endpoint = "http://127.0.0.1:9" if case == "unreachable" else s3
    sets = {"no_bucket": ["lakehouse.location=s3a://no-such-bucket/lake"],
            "file": [f"llm.staging_dir=s3a://{BUCKET}/bad/afile"]}.get(case, [])
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # cached clients keep the credentials they were made with
    if case == "no_credentials":
        for k in KEYS:
            monkeypatch.delenv(k)
        for k, v in {"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                     "AWS_EC2_METADATA_DISABLED": "true"}.items():
            monkeypatch.setenv(k, v)
    # no session to ask where executors run: the dump's local folder is declared shared, so only the
    # object-store locations are judged
    sets.append("spark.local_paths_shared=true")
    cfg = load_config(_config(tmp_path, endpoint, "bad", collection={"source": str(tmp_path)}), sets)
    with pytest.raises(StorageError) as err:
        check_storage("collect", cfg, Lakehouse(None, cfg))  # type: ignore[arg-type]  # no session needed
    assert expect in str(err.value) and "\n" not in str(err.value)
    s3fs.S3FileSystem.clear_instance_cache()


def test_a_missing_bucket_stops_the_cli_before_any_table(s3, tmp_path):
    cfg = _config(tmp_path, s3, "bad", collection={"source": str(tmp_path)})
    out = _mfr("run", "--stage", "collect", "--config", str(cfg), "--set", "lakehouse.location=s3a://no-such-bucket/lake",
               timeout=300)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("mfr:")]
    assert lines == ["mfr: storage error: lakehouse.location: cannot write under s3a://no-such-bucket/lake: no such bucket "
                     "(FileNotFoundError: The specified bucket does not exist)"], out.stderr[-2000:]
    assert not list((tmp_path / "wh").rglob("_delta_log"))  # no table written
