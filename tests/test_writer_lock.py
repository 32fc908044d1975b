"""The lakehouse's writer lock: when it is needed, the conditional writes it stands on (local folders and a
real S3 server: moto on 127.0.0.1, no Spark), and what two drivers see."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mfr.storage import Storage, StorageError
from mfr.writer_lock import LakehouseBusy, LockLost, WriterLock, lock_path, single_writer_reason
from tests.s3_server import moto_bucket, storage_for

REPO = Path(__file__).resolve().parents[1]
BUCKET = "mfr-lock"


# ---- when one driver at a time ------------------------------------------------------------------------
@pytest.mark.parametrize("location, confs, databricks, setting, needed", [
    ("s3a://b/lake", {}, False, None, True),  # open-source Delta's default S3 log store
    ("s3://b/lake", {}, False, None, True),  # EMRFS
    ("s3a://b/lake", {"spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore"}, False, None, False),
    ("s3://b/lake", {"spark.delta.logStore.s3a.impl": "io.delta.storage.S3DynamoDBLogStore"}, False, None, True),
    ("s3://b/lake", {"spark.delta.logStore.class": "io.delta.storage.S3DynamoDBLogStore"}, False, None, False),
    ("s3a://b/lake", {"spark.delta.logStore.s3a.impl": "io.delta.storage.S3SingleDriverLogStore"}, False, None, True),
    ("s3a://b/lake", {"spark.delta.logStore.s3a.impl": "com.example.OwnLogStore"}, False, None, True),  # unknown: ask
    ("s3a://b/lake", {}, True, None, False),  # Databricks' commit service
    ("/tmp/lake", {}, False, None, False),
    ("file:/tmp/lake", {}, False, None, False),
    ("hdfs://nn/lake", {}, False, None, False),
    ("abfss://c@a.dfs.core.windows.net/lake", {}, False, None, False),
    ("gs://b/lake", {}, False, None, False),
    (None, {}, False, None, False),
    ("/tmp/lake", {}, False, True, True),  # forced on
    ("s3a://b/lake", {}, False, False, False),  # the user's Delta keeps drivers apart some other way
])
def test_one_driver_at_a_time_only_where_delta_cannot_keep_drivers_apart(location, confs, databricks, setting, needed):
    reason = single_writer_reason(location, confs, databricks, setting)
    assert (reason is not None) == needed
    if reason and setting is None:
        assert "S3DynamoDBLogStore" in reason  # the message says how to lift it


# ---- conditional writes -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def s3_endpoint():
    with moto_bucket(BUCKET) as endpoint:
        yield endpoint


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """(Storage, a folder) on a local disk or on the S3 server."""
    if request.param == "local":
        return Storage(), str(tmp_path)
    pytest.importorskip("s3fs")  # in mfr[s3]; a compat leg's venv may lack it
    endpoint = request.getfixturevalue("s3_endpoint")
    return storage_for(endpoint), f"s3a://{BUCKET}/{tmp_path.name}"


def test_conditional_writes_act_only_on_the_content_their_token_names(where):
    storage, root = where
    path = f"{root}/locks/writer.json"
    first = storage.create_new(path, "a")
    assert first is not None
    assert storage.create_new(path, "b") is None  # exists: nothing written
    assert storage.read_with_token(path) == ("a", first)
    second = storage.replace_if(path, first, "c")
    assert second is not None and second != first
    assert storage.replace_if(path, first, "d") is None  # a stale token changes nothing
    assert storage.delete_if(path, first) is False
    assert storage.read_text(path) == "c"
    assert storage.delete_if(path, second) is True
    assert storage.read_with_token(path) is None
    assert storage.replace_if(path, second, "e") is None  # gone: not recreated
    assert storage.delete_if(path, second) is False
    assert storage.create_new(path, "f") is not None


def test_of_racing_creators_exactly_one_wins(where):
    storage, root = where
    path = f"{root}/race/writer.json"
    won: list[int] = []
    start = threading.Barrier(8)

    def create(i: int) -> None:
        start.wait()
        if storage.create_new(path, str(i)) is not None:
            won.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert storage.read_text(path) == str(won[0])


def test_conditional_writes_refuse_stores_they_cannot_make_atomic():
    with pytest.raises(StorageError, match="local folders and S3 only"):
        Storage().create_new("gs://bucket/locks/writer.json", "x")
    lock = WriterLock(Storage(), lock_path("hdfs://nn/staging"), "run-1", 1.0, 10.0, "runs.single_writer is true")
    with pytest.raises(StorageError, match="staging folder, which must be on S3 or a local folder"):
        lock.acquire()


# ---- the lock -----------------------------------------------------------------------------------------
def _lock(storage: Storage, root: str, holder: str, heartbeat_s: float = 0.2, abandon_after_s: float = 5.0) -> WriterLock:
    return WriterLock(storage, lock_path(root), holder, heartbeat_s, abandon_after_s, "test")


def _held_by(storage: Storage, root: str, holder: str, host: str, pid: int, age_s: float) -> None:
    body = {"holder": holder, "host": host, "pid": pid, "at": time.time() - age_s}
    storage.write_text(lock_path(root), json.dumps(body))


def test_a_second_driver_is_refused_while_the_first_holds_then_admitted(where):
    storage, root = where
    first = _lock(storage, root, "run-1")
    first.acquire()
    try:
        time.sleep(0.5)  # renewals go on meanwhile
        with pytest.raises(LakehouseBusy, match="held by run run-1"):
            _lock(storage, root, "run-2").acquire()
        first.check()
    finally:
        first.release()
    assert storage.read_with_token(lock_path(root)) is None
    second = _lock(storage, root, "run-2")
    second.acquire()
    second.release()


@pytest.mark.parametrize("host, pid, age_s, gone", [
    ("elsewhere", 1, 2.0, False),  # another host, fresh renewal: alive
    ("elsewhere", 1, 60.0, True),  # no renewal for longer than abandon_after_s
    ("here", 2**22 + 12345, 0.0, True),  # this host, its process gone
])
def test_the_lock_of_a_gone_driver_is_taken_over_and_a_live_ones_is_not(where, host, pid, age_s, gone):
    storage, root = where
    _held_by(storage, root, "run-0", socket.gethostname() if host == "here" else host, pid, age_s)
    lock = _lock(storage, root, "run-1", abandon_after_s=10.0)
    if not gone:
        with pytest.raises(LakehouseBusy):
            lock.acquire()
        assert json.loads(storage.read_text(lock_path(root)))["holder"] == "run-0"
        return
    lock.acquire()
    try:
        assert json.loads(storage.read_text(lock_path(root)))["holder"] == "run-1"
    finally:
        lock.release()


def test_of_drivers_taking_over_one_gone_lock_exactly_one_wins(where):
    storage, root = where
    _held_by(storage, root, "run-0", "elsewhere", 1, 600.0)
    locks = [_lock(storage, root, f"run-{i}", heartbeat_s=30.0) for i in range(1, 7)]
    outcome: dict[str, str] = {}
    start = threading.Barrier(len(locks))

    def take(lock: WriterLock) -> None:
        start.wait()
        try:
            lock.acquire()
            outcome[lock.holder] = "held"
        except LakehouseBusy:
            outcome[lock.holder] = "busy"

    threads = [threading.Thread(target=take, args=(lk,)) for lk in locks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [h for h, o in outcome.items() if o == "held"]
    assert len(winners) == 1, outcome
    assert json.loads(storage.read_text(lock_path(root)))["holder"] == winners[0]
    for lk in locks:
        lk.release()


def test_a_run_of_this_process_reading_a_lock_being_taken_sees_it_held(monkeypatch, tmp_path):
    """Two runs of one process (threads): the second reads the lock in the moment between the first's write
    and the first's return. It must be told busy, not take the lock for a leftover of this process."""
    storage, root = Storage(), str(tmp_path)
    written = threading.Event()
    real_create = Storage.create_new

    def slow_create(self, path, text):  # a store slow to answer: the object exists before the call returns
        token = real_create(self, path, text)
        if token is not None:
            written.set()
            time.sleep(0.5)
        return token

    monkeypatch.setattr(Storage, "create_new", slow_create)
    first, second = _lock(storage, root, "run-1", heartbeat_s=30.0), _lock(storage, root, "run-2", heartbeat_s=30.0)
    taker = threading.Thread(target=first.acquire)
    taker.start()
    assert written.wait(10)
    with pytest.raises(LakehouseBusy, match="held by run run-1"):
        second.acquire()
    taker.join()
    assert json.loads(storage.read_text(lock_path(root)))["holder"] == "run-1"
    first.release()
    second.release()


def test_a_holder_whose_lock_was_taken_over_knows_it_and_leaves_the_new_holders_lock(where):
    storage, root = where
    old = _lock(storage, root, "run-1", heartbeat_s=0.2)
    old.acquire()
    try:
        # another driver judged run-1 gone and took the lock (as after a long pause of run-1's driver)
        _held_by(storage, root, "run-2", "elsewhere", 1, 0.0)
        deadline = time.time() + 10
        while not old.lost and time.time() < deadline:
            time.sleep(0.1)
        with pytest.raises(LockLost):
            old.check()
    finally:
        old.release()
    assert json.loads(storage.read_text(lock_path(root)))["holder"] == "run-2"  # not removed by the old holder


def test_two_processes_acquiring_at_once_one_holds_one_is_busy(tmp_path):
    """Separate processes (separate drivers) on one lock folder."""
    script = (
        "import sys, time\n"
        "from mfr.storage import Storage\n"
        "from mfr.writer_lock import WriterLock, LakehouseBusy, lock_path\n"
        "lock = WriterLock(Storage(), lock_path(sys.argv[1]), sys.argv[2], 0.2, 30.0, 'test')\n"
        "time.sleep(max(0.0, float(sys.argv[3]) - time.time()))\n"
        "try:\n"
        "    lock.acquire()\n"
        "except LakehouseBusy:\n"
        "    print('busy'); sys.exit(0)\n"
        "print('held'); sys.stdout.flush(); time.sleep(1.5); lock.release()\n"
    )
    at = time.time() + 2.0
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path), f"run-{i}", str(at)], env=env,
                              stdout=subprocess.PIPE, text=True) for i in range(4)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert outs == ["busy", "busy", "busy", "held"]
    assert not Path(lock_path(str(tmp_path))).exists()


def test_a_lock_this_process_left_behind_is_taken_over_and_one_it_holds_is_not(where):
    """A store without conditional deletes cannot release the lock: the next run of the same process (the
    next stage of `--stage all`) takes it over instead of waiting for runs.abandon_after_s."""
    storage, root = where
    held = _lock(storage, root, "run-1", heartbeat_s=30.0)
    held.acquire()
    try:
        with pytest.raises(LakehouseBusy, match="held by run run-1"):  # held now, by this very process
            _lock(storage, root, "run-2").acquire()
    finally:
        held.release()
    _held_by(storage, root, "run-1", socket.gethostname(), os.getpid(), 1.0)  # its release did not land
    nxt = _lock(storage, root, "run-2")
    nxt.acquire()
    nxt.release()


@pytest.mark.parametrize("sql, writes", [
    ("SELECT * FROM mfr.collected", False),
    ("  -- fix one row\n UPDATE mfr.cleaned SET answer = '5' WHERE sample_key = 'a:1'", True),
    ("/* hand correction */ DELETE FROM mfr.cleaned WHERE id = 3", True),
    ("MERGE INTO mfr.cleaned t USING fixes s ON t.sample_key = s.sample_key WHEN MATCHED THEN UPDATE SET *", True),
    ("RESTORE TABLE mfr.collected TO VERSION AS OF 1", True),
    ("VACUUM mfr.collected", True),
    ("ALTER TABLE mfr.collected SET TBLPROPERTIES ('a' = 'b')", True),
    ("DESCRIBE HISTORY mfr.collected", False),
    ("SHOW TABLES IN mfr", False),
    ("(SELECT 1)", False),
    ("select count(*) from mfr.runs where status = 'running' -- UPDATE later", False),
    ("", False),
])
def test_which_sql_statements_commit(sql, writes):
    from mfr.writer_lock import statement_writes

    assert statement_writes(sql) is writes
