"""Publication, liveness and healing of the run log: a failed or killed run never becomes input, a dead
driver's run is marked abandoned, two runs of a stage never run at once, table creation heals itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from pyspark.sql import functions as F

from mfr import runner
from mfr.lakehouse import Lakehouse
from mfr.liveness import driver_gone, lease_path
from mfr.runlog import RunLog, StageBusy
from mfr.runner import AccountingError, run_stage


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_driver_gone_rules():
    host = socket.gethostname()
    now = 1000.0
    assert driver_gone(None, now - 10, now, 120, host) is None  # just started: its lease may not be written yet
    assert driver_gone(None, now - 500, now, 120, host) == "no lease"
    assert driver_gone({"host": host, "pid": os.getpid(), "at": now - 5}, 0, now, 120, host) is None
    assert "is gone" in driver_gone({"host": host, "pid": _dead_pid(), "at": now - 5}, 0, now, 120, host)
    assert driver_gone({"host": "elsewhere", "pid": 1, "at": now - 5}, 0, now, 120, host) is None
    assert driver_gone({"host": "elsewhere", "pid": 1, "at": now - 300}, 0, now, 120, host) == "no heartbeat for 300s"


@pytest.mark.compat  # RESTORE and time travel of a failed run's version
@pytest.mark.slow  # three runs, a failed run and two RESTOREs (every compat leg runs it)
def test_a_run_that_fails_after_writing_is_never_an_input(spark, make_cfg, monkeypatch):
    """On two stages with nothing to compute (tests/extra_stage.py): what the runner does around any stage."""
    from tests.extra_stage import DOUBLED, NUMBERS, registered

    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    with registered(NUMBERS, DOUBLED):
        good = run_stage(spark, cfg, "numbers")
        before = sorted(r["sample_key"] for r in lh.read("numbers").collect())

        real = runner._count_outcomes

        def one_row_too_many(*args, **kwargs):  # the accounting check fails after the output was written
            counted = real(*args, **kwargs)
            return runner.Outcomes({**counted.written, ("invented", None): 1}, counted.quarantined)

        monkeypatch.setattr(runner, "_count_outcomes", one_row_too_many)
        with pytest.raises(AccountingError):
            run_stage(spark, cfg.with_overrides(["collection.max_samples=3"]), "numbers")
        monkeypatch.undo()

        runs = RunLog(lh)
        failed = runs.list("numbers").orderBy(F.col("started_at").desc()).first()
        assert failed["status"] == "failed" and "rows_in" in failed["error"]
        history = lh.history("numbers").orderBy("version").collect()
        # the failed run's version exists (for debugging) but the published one is the good run's …
        assert len(history) == 3 and runs.published("numbers") == good.output_version
        # … a plain SELECT shows the published content again (restored) …
        assert sorted(r["sample_key"] for r in lh.read("numbers").collect()) == before
        # … and the next stage pins the good run's version, not the table's current one
        _, inputs = runner._pin_inputs("doubled", cfg, lh, runs, None, runs.snapshot())
        assert inputs == {"numbers": good.output_version}
        # a RESTORE through the notebook helper is recorded as a run: the restored version becomes the input
        from mfr.notebook import Lake

        restored = Lake(spark, cfg, lh).restore("numbers", 1)
        assert runs.published("numbers") == restored
        assert lh.read("numbers").count() == lh.read("numbers", 1).count() == 3 < len(before)
        assert runs.list("restore").first()["input_versions"] == {"numbers": 1}
        assert run_stage(spark, cfg, "doubled").rows_in == 3  # what the next stage reads


@pytest.mark.slow  # moved out of `make test` to keep it under 15 minutes on CI; `make test-slow` runs it
def test_a_dead_drivers_run_is_abandoned_and_a_live_one_holds_the_stage(spark, make_cfg):
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    runs = RunLog(lh)
    dead = runs.start("select", cfg, {}, None)
    runs._leases.pop(dead.run_id)._heartbeat.stop()  # the driver "dies": no more beats, its lease names a gone process
    lease = {"host": socket.gethostname(), "pid": _dead_pid(), "at": time.time()}
    lh.storage.write_text(lease_path(lh.staging_root, dead.run_id), json.dumps(lease))

    other = RunLog(lh)  # the next command
    live = other.start("select", cfg, {}, None)
    rows = {r["run_id"]: r for r in other.list("select").collect()}
    assert rows[dead.run_id]["status"] == "abandoned" and "is gone" in rows[dead.run_id]["error"]
    assert rows[live.run_id]["status"] == "running"
    assert not lh.storage.exists(lease_path(lh.staging_root, dead.run_id))

    with pytest.raises(StageBusy, match=f"stage select is held by run {live.run_id}"):
        RunLog(lh).start("select", cfg, {}, None)
    RunLog(lh).start("export", cfg, {}, None)  # other stages are free
    other.fail(live, "test over")
    assert not lh.storage.exists(lease_path(lh.staging_root, live.run_id))


@pytest.mark.compat  # UPDATE with literals of every type
@pytest.mark.slow  # ~10 s of run-log writes (every compat leg runs it)
def test_run_log_keeps_any_text_and_numbers_and_a_sweep_removes_only_ended_runs(spark, make_cfg):
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    runs = RunLog(lh)
    failed, done, running = (runs.start(stage, cfg, {"collected": 3}, None) for stage in ("clean", "select", "distill"))
    nasty = "it's \\ a \"quote\"\nline two \u2603 \u2028 '); DROP TABLE runs; --"
    runs.fail(failed, nasty)
    runs.finish(done, output_version=7, rows_in=5, rows_kept=3, rows_rejected=1, rows_quarantined=1,
                metrics={"time_s.write": 1.25, "rejected.too_short": 1.0, "odd": float("inf")})
    rows = {r["run_id"]: r for r in runs.list().collect()}
    assert rows[failed.run_id]["status"] == "failed" and rows[failed.run_id]["error"] == nasty
    assert abs((rows[failed.run_id]["finished_at"] - rows[failed.run_id]["started_at"]).total_seconds()) < 120
    got = rows[done.run_id]
    assert (got["status"], got["output_version"], got["rows_in"], got["rows_kept"], got["rows_rejected"],
            got["rows_quarantined"]) == ("succeeded", 7, 5, 3, 1, 1)
    assert got["metrics"] == {"time_s.write": 1.25, "rejected.too_short": 1.0, "odd": float("inf")}
    assert rows[running.run_id]["status"] == "running" and rows[running.run_id]["input_versions"] == {"collected": 3}
    # intermediates: an ended run's go; a running run's and an unknown run's (another schema's) stay
    for run_id in (failed.run_id, running.run_id, "20260101T000000-clean-abcdef"):
        lh.storage.write_text(f"{lh.staging_root}/{lh.RUN_FOLDERS[0]}/{run_id}/part-0", "x")
    assert lh.sweep_intermediates(runs.snapshot().ended()) == [failed.run_id]
    assert sorted(lh.storage.list_dirs(f"{lh.staging_root}/{lh.RUN_FOLDERS[0]}")) == sorted(
        [running.run_id, "20260101T000000-clean-abcdef"])
    runs.fail(running, "test over")


@pytest.mark.compat  # MERGE claims and the conflict Delta raises
def test_two_claims_at_once_one_wins(spark, make_cfg):
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def claim() -> None:
        runs = RunLog(Lakehouse(spark, cfg))
        barrier.wait()
        try:
            runs.start("distill", cfg, {}, None)
            outcomes.append("won")
        except StageBusy:
            outcomes.append("busy")

    threads = [threading.Thread(target=claim) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(outcomes) == ["busy", "won"]
    running = RunLog(lh).list("distill").where("status = 'running'").count()
    assert running == 1


@pytest.mark.compat  # a half-made table's Delta log
def test_table_creation_heals_after_a_kill(spark, make_cfg):
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    lh.create_schema()
    where = lh.schema_location()
    # a create killed after Delta committed but before the catalog entry: the log is registered as it is
    from mfr.lakehouse import RUNS_SCHEMA

    spark.createDataFrame([("r1", "collect", "succeeded")], "run_id string, stage string, status string") \
        .select("run_id", "stage", "status", *[F.lit(None).cast(f.dataType).alias(f.name) for f in RUNS_SCHEMA.fields[3:]]) \
        .write.format("delta").save(f"{where}/runs")
    # a create killed before its first commit: files without a committed log are cleared
    lh.storage.write_text(f"{where}/quarantine/_delta_log/.00000000000000000000.json.tmp", "{")
    lh.storage.write_text(f"{where}/quarantine/part-0.parquet", "junk")
    lh.ensure_schema()
    assert [r["run_id"] for r in lh.read("runs").collect()] == ["r1"]
    assert lh.read("quarantine").count() == 0
    assert lh.exists("images") and lh.exists("llm_calls")


@pytest.mark.slow  # two collects around a held lock (~18 s)
def test_where_one_driver_at_a_time_a_held_lakehouse_refuses_a_run_before_any_write(spark, make_cfg, synthetic_dump):
    from mfr.notebook import Lake
    from mfr.writer_lock import LakehouseBusy, lock_path

    cfg = make_cfg(f"collection.source={synthetic_dump}", "collection.max_samples=5", "runs.single_writer=true")
    lh = Lakehouse(spark, cfg)
    first = run_stage(spark, cfg, "collect")  # holds the lock for the run, and gives it back
    lock = lock_path(lh.staging_root)
    assert not lh.storage.exists(lock)
    versions = {t: lh.current_version(t) for t in ("runs", "collected", "images", "quarantine")}

    # another driver (another host, renewed a second ago) holds the lakehouse
    body = {"holder": "20990101T000000-distill-abcdef", "host": "elsewhere", "pid": 1, "at": time.time() - 1}
    lh.storage.write_text(lock, json.dumps(body))
    with pytest.raises(LakehouseBusy, match="held by run 20990101T000000-distill-abcdef on elsewhere"):
        run_stage(spark, cfg, "clean")
    with pytest.raises(LakehouseBusy):  # a notebook's RESTORE writes the table and the run log too
        Lake(spark, cfg, lh).restore("collected", first.output_version)
    assert {t: lh.current_version(t) for t in versions} == versions  # not even the run log was written

    # that driver stops renewing: after runs.abandon_after_s its lock is taken over
    body["at"] = time.time() - 3600
    lh.storage.write_text(lock, json.dumps(body))
    second = run_stage(spark, cfg, "collect", full=True)  # a run that writes (a plain rerun of these files skips)
    assert not lh.storage.exists(lock)
    assert [r["status"] for r in RunLog(lh).list("collect").collect()] == ["succeeded", "succeeded"]
    assert second.output_version > first.output_version


@pytest.mark.slow  # a collect to show no lock is made (~9 s)
def test_without_the_need_no_lock_is_made(spark, make_cfg, synthetic_dump, monkeypatch):
    from mfr import writer_lock

    made = []
    real = writer_lock.WriterLock.acquire
    monkeypatch.setattr(writer_lock.WriterLock, "acquire", lambda self, *a: made.append(self.holder) or real(self, *a))
    cfg = make_cfg(f"collection.source={synthetic_dump}", "collection.max_samples=3")  # local tables: auto says no
    assert writer_lock.reason_for(Lakehouse(spark, cfg)) is None
    run_stage(spark, cfg, "collect")
    assert made == []
    assert writer_lock.reason_for(Lakehouse(spark, cfg.with_overrides(["runs.single_writer=true"]))) is not None


@pytest.mark.slow  # a race of its own for ~20 s (every compat leg runs it)
@pytest.mark.compat  # the conflicts OPTIMIZE raises
def test_run_log_updates_survive_a_concurrent_compaction_of_the_runs_table(spark, make_cfg):
    """A run's finish is an UPDATE of its row; another run's write to the runs table meanwhile (its claim or
    finish), or a compaction rewriting the row's file (OPTIMIZE, e.g. Databricks' predictive optimization),
    makes Delta refuse the commit that comes second. The run log's writes try again instead of failing."""
    cfg = make_cfg()
    lh = Lakehouse(spark, cfg)
    runs = RunLog(lh)
    run = runs.start("collect", cfg, {}, None)
    compactions = []

    def churn() -> None:  # one more small file, then a compaction rewriting the row's file: until two committed
        for i in range(16):
            if len(compactions) >= 2:
                return
            try:
                spark.sql(f"INSERT INTO {lh.name('runs')} (run_id, stage, status) VALUES ('other-{i}', 'x', 'done')")
                compactions.append(spark.sql(f"OPTIMIZE {lh.name('runs')}").collect())
            except Exception:  # the compaction lost the race to an update: try again
                pass
            time.sleep(0.5)  # pacing, so the updates' commits fall between the churner's

    churner = threading.Thread(target=churn)
    churner.start()
    updates = 0
    while churner.is_alive() or updates < 6:
        lh.update_row("runs", "run_id", run.run_id, {"error": f"note {updates}"}, run)
        updates += 1
    churner.join()
    assert len(compactions) >= 2  # the row's file really was rewritten meanwhile
    row = RunLog(lh).get(run.run_id)
    assert row["error"] == f"note {updates - 1}" and row["status"] == "running"
