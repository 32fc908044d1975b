"""mfr.storage and the journals on it, without Spark (object stores: tests/test_s3.py)."""

from __future__ import annotations

import os
import time

import pytest

from mfr.llm.journal import JournalWriter, Progress, journal_prefix, parse_records, read_records
from mfr.storage import Storage, StorageError, _s3_options, describe, is_local, join, local_path, relative


def test_paths():
    assert local_path("dbfs:/Volumes/main/mfr/x") == "/Volumes/main/mfr/x"
    assert local_path("dbfs:/tmp/x") == "/dbfs/tmp/x"
    assert local_path("file:/tmp/x") == "/tmp/x"
    assert is_local("/Volumes/a") and is_local("dbfs:/a") and is_local("rel/dir")
    assert not is_local("s3a://b/k") and not is_local("abfss://c@a.dfs.core.windows.net/x")
    assert join("s3a://b/root/", "j", "k.json") == "s3a://b/root/j/k.json"
    assert join("/tmp/a", "b") == "/tmp/a/b"
    assert relative("s3a://b/root", "s3a://b/root/run-1/calls/x.jsonl") == "run-1/calls/x.jsonl"


def test_s3_options_follow_sparks_s3a_settings():
    opts = _s3_options({"spark.hadoop.fs.s3a.endpoint": "minio:9000", "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
                        "spark.hadoop.fs.s3a.path.style.access": "true", "spark.hadoop.fs.s3a.endpoint.region": "eu-west-1"})
    assert opts["endpoint_url"] == "http://minio:9000"
    assert opts["config_kwargs"]["s3"] == {"addressing_style": "path"}
    assert opts["client_kwargs"] == {"region_name": "eu-west-1"}
    assert "endpoint_url" not in _s3_options({})  # AWS itself: the SDK's own endpoint and credential chain


def test_local_files_whole_objects_listing_and_delete(tmp_path):
    st = Storage()
    st.write_text(str(tmp_path / "a" / "x.jsonl"), "1\n")
    st.write_bytes(str(tmp_path / "a" / "b" / "y.jsonl"), b"2\n")
    st.write_text(f"file:{tmp_path}/c/z.txt", "z")
    assert [relative(str(tmp_path), f) for f in st.list_files(str(tmp_path), ".jsonl")] == ["a/b/y.jsonl", "a/x.jsonl"]
    assert st.list_dirs(str(tmp_path)) == ["a", "c"]
    assert not [p for p in (tmp_path / "a").iterdir() if ".tmp-" in p.name]  # written under a temporary name, renamed
    assert st.size(str(tmp_path / "a" / "x.jsonl")) == 2 and st.size(str(tmp_path / "nope")) is None
    st.delete(str(tmp_path / "a"))
    st.delete(str(tmp_path / "a"))  # absent: nothing to do
    assert st.list_files(str(tmp_path / "a")) == [] and st.list_dirs(str(tmp_path)) == ["c"]


def test_bad_locations_are_one_line_naming_the_setting(tmp_path):
    st = Storage()
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(StorageError, match=f"^export.out: {afile} is a file, not a folder$"):
        st.check_writable(str(afile), "export.out")
    with pytest.raises(StorageError, match=r"^llm.staging_dir: cannot write under /sys/mfr-test: permission denied"):
        st.check_writable("/sys/mfr-test", "llm.staging_dir")  # read-only even for root
    with pytest.raises(StorageError, match=f"^collection.source: {tmp_path}/missing does not exist$"):
        st.check_readable(str(tmp_path / "missing"), "collection.source")
    with pytest.raises(StorageError, match="is a file, not a folder"):
        st.check_readable(str(afile), "collection.source")
    with pytest.raises(StorageError, match=r"pip install 'mfr\[gcs\]'"):
        st.check_writable("gs://bucket/x", "export.out") if not _has("gcsfs") else pytest.skip("gcsfs installed")
    st.check_writable(str(tmp_path / "new" / "folder"), "export.out")  # created on demand, probe removed
    assert st.list_files(str(tmp_path / "new")) == []


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_describe_names_the_kind():
    assert describe(PermissionError(13, "Permission denied")).startswith("permission denied")
    assert describe(RuntimeError("Unable to locate credentials")).startswith("no credentials")
    assert describe(FileNotFoundError("The specified bucket does not exist")).startswith("no such bucket")
    assert describe(OSError("Could not connect to the endpoint URL")).startswith("endpoint unreachable")


def test_journal_batches_are_whole_objects_flushed_by_count_time_and_close():
    st = Storage()
    root = f"memory://journal-{os.getpid()}-{time.time_ns()}"  # no appends there, like S3 or Volumes
    prefix = journal_prefix(root, "run-1", call_id="cot-1", partition=3, attempt=0)
    w = JournalWriter(st, prefix, batch=3, flush_s=0.3)
    for i in range(4):
        w.write({"request_key": f"k{i}", "status": "ok", "completion_tokens": 10})
    assert len(st.list_files(root, ".jsonl")) == 1  # three records: the first batch
    time.sleep(0.8)  # the quiet fourth record is flushed by the timer
    files = st.list_files(root, ".jsonl")
    assert len(files) == 2 and [len(read_records(st, f)) for f in files] == [3, 1]
    w.write({"request_key": "k4", "status": "error", "errors_by_kind": {"timeout": 2}})
    w.close()
    progress = Progress(st, join(root, "run-1"))
    progress.poll()
    progress.poll()  # objects never change: each is read once
    assert (progress.done, progress.ok, progress.tokens, dict(progress.errors)) == (5, 4, 40, {"timeout": 2})
    assert all(os.path.basename(f).startswith("part-3-attempt-0-") for f in st.list_files(root, ".jsonl"))
    assert all("/run-1/cot-1/" in f for f in st.list_files(root, ".jsonl"))


def test_a_retried_task_finds_what_its_earlier_attempts_journaled(tmp_path):
    from mfr.llm.journal import earlier_attempts

    st = Storage()
    root = str(tmp_path / "journal")
    for part, attempt, keys in ((2, 0, ["a", "b"]), (2, 1, ["c"]), (5, 0, ["x"]), (2, 0, [])):
        w = JournalWriter(st, journal_prefix(root, "run-1", "cot-1", part, attempt))
        for k in keys:
            w.write({"request_key": k, "status": "ok"})
        w.close()
    other = JournalWriter(st, journal_prefix(root, "run-1", "caption-2", 2, 0))  # another call of the run
    other.write({"request_key": "z", "status": "ok"})
    other.close()
    assert earlier_attempts(st, root, "run-1", "cot-1", 2, 0) == set()
    assert earlier_attempts(st, root, "run-1", "cot-1", 2, 1) == {"a", "b"}
    assert earlier_attempts(st, root, "run-1", "cot-1", 2, 2) == {"a", "b", "c"}


def test_progress_hands_each_new_record_once_and_drops_read_objects():
    st = Storage()
    root = f"memory://journal-new-{os.getpid()}-{time.time_ns()}"
    w = JournalWriter(st, journal_prefix(root, "run-1", "cot-1", 0, 0), batch=2, flush_s=60)
    progress = Progress(st, join(root, "run-1"))
    for k in ("k0", "k1", "k2"):
        w.write({"request_key": k, "status": "ok"})
    assert [r["request_key"] for r in progress.poll()] == ["k0", "k1"]
    assert progress.poll() == []
    (path,) = [p for p in progress.seen if progress.whole(p)]  # an object store batch: read to its end
    st.delete(path)
    progress.forget(path)
    w.close()
    assert [r["request_key"] for r in progress.poll()] == ["k2"] and progress.done == 3


def test_journal_batch_put_does_not_hold_up_calls_finishing_meanwhile():
    class SlowStore(Storage):
        def write_bytes(self, path: str, data: bytes) -> None:
            time.sleep(0.6)  # a slow PUT
            super().write_bytes(path, data)

    st = SlowStore()
    root = f"memory://journal-slow-{os.getpid()}-{time.time_ns()}"
    w = JournalWriter(st, journal_prefix(root, "run-1", call_id="cot-1", partition=0, attempt=0), batch=1000, flush_s=0.2)
    w.write({"request_key": "k0", "status": "ok"})
    time.sleep(0.35)  # the timer's PUT of k0 is under way
    started = time.monotonic()
    for i in range(1, 50):
        w.write({"request_key": f"k{i}", "status": "ok"})
    assert time.monotonic() - started < 0.3  # not queued behind the PUT
    w.close()
    files = st.list_files(root, ".jsonl")
    keys = [r["request_key"] for f in files for r in read_records(st, f)]
    assert sorted(keys, key=lambda k: int(k[1:])) == [f"k{i}" for i in range(50)] and len(files) >= 2


def test_local_journal_has_each_call_on_disk_as_soon_as_it_finishes(tmp_path):
    st = Storage()
    root = str(tmp_path / "journal")
    w = JournalWriter(st, journal_prefix(root, "run-1", call_id="cot-2", partition=0, attempt=0), batch=64, flush_s=60)
    progress = Progress(st, join(root, "run-1"))
    w.write({"request_key": "k0", "status": "ok", "completion_tokens": 7, "text": "a\u2028b"})
    (path,) = st.list_files(root, ".jsonl")
    assert [r["request_key"] for r in read_records(st, path)] == ["k0"]  # not waiting for a batch or close
    progress.poll()
    w.write({"request_key": "k1", "status": "error", "errors_by_kind": {"http_500": 1}})
    with open(path, "a") as fh:  # a line being written when the reader looks is left for the next poll
        fh.write('{"request_key": "k2", "status": "o')
    progress.poll()
    assert (progress.done, progress.ok, progress.tokens) == (2, 1, 7)
    with open(path, "a") as fh:
        fh.write('k"}\n')
    progress.poll()
    assert (progress.done, progress.ok, dict(progress.errors)) == (3, 2, {"http_500": 1})
    w.close()
    assert [r["request_key"] for r in read_records(st, path)] == ["k0", "k1", "k2"]
    assert read_records(st, path)[0]["text"] == "a\u2028b"
    assert parse_records('{"a": 1}\n{"b": 2}') == [{"a": 1}]  # a cut last line is not a record
