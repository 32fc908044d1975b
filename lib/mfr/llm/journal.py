"""Call journals: finished calls written by the task that made them.

A journal is the crash-safety net under the Delta commits: if the driver dies mid-shard, the calls that
finished are in the journal and the next run stores them before asking for anything. Journals are also
what the driver reads to show progress. Two ways of writing, picked by where the journal lives:

* a local disk: one file per task attempt, each finished call appended and flushed at once, so a killed
  job loses only the calls in flight;
* object stores and Volumes' FUSE mount (no appends there): each batch is a whole object of its own,
  written once ``batch`` calls wait or the oldest has waited ``flush_s``, so a killed job also repeats the
  calls that finished within the last ``flush_s`` (plus the time one PUT takes).

Names: ``<dir>/<run_id>/<call_id>/part-<p>-attempt-<a>-<n>.jsonl`` (``call_id``: one per ``call_many``).
Readers keep a byte offset per file and read only what grew (a whole object is read once).
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

from mfr.storage import Storage, appendable, join, local_path


class JournalWriter:
    """Writes finished calls under ``prefix``: appended line by line on a local disk, else in batches."""

    def __init__(self, storage: Storage, prefix: str, batch: int = 64, flush_s: float = 2.0):
        self.storage, self.prefix, self.batch, self.flush_s = storage, prefix, batch, flush_s
        self._buf: list[str] = []
        self._since = 0.0
        self._seq = 0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._closed = threading.Event()
        self._file: IO[str] | None = None
        if appendable(prefix):
            path = local_path(f"{prefix}-{0:06d}.jsonl")
            storage.makedirs(path.rsplit("/", 1)[0])
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the task's life, closed by close()
        else:
            threading.Thread(target=self._tick, daemon=True).start()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            if self._file is not None:
                self._file.write(line)
                self._file.flush()  # in the OS's hands: survives the process being killed
                return
            if not self._buf:
                self._since = time.monotonic()
            self._buf.append(line)
            full = len(self._buf) >= self.batch
        if full:
            self._flush()

    def _tick(self) -> None:
        # checked often, so a call is written at most ``flush_s`` (plus one PUT) after it finished
        while not self._closed.wait(min(0.25, self.flush_s / 4)):
            with self._lock:
                due = bool(self._buf) and time.monotonic() - self._since >= self.flush_s
            if due:
                self._flush()

    def _flush(self) -> None:
        # the buffer is swapped under the lock and written outside it: calls finishing meanwhile are not
        # held up by the store's PUT; the write lock keeps objects in sequence order
        with self._write_lock:
            with self._lock:
                lines, self._buf = self._buf, []
                seq = self._seq
                self._seq += 1 if lines else 0
            if lines:
                self.storage.write_bytes(f"{self.prefix}-{seq:06d}.jsonl", "".join(lines).encode("utf-8"))

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
        self._flush()


def journal_prefix(root: str, run_id: str, call_id: str, partition: int, attempt: int) -> str:
    return join(root, run_id, call_id, f"part-{partition}-attempt-{attempt}")


def earlier_attempts(storage: Storage, root: str, run_id: str, call_id: str, partition: int, attempt: int) -> set[str]:
    """Request keys journaled by the earlier attempts of a task (a retried task does not ask them again:
    the driver stores them from those journals)."""
    keys: set[str] = set()
    for a in range(attempt):
        prefix = journal_prefix(root, run_id, call_id, partition, a).rsplit("/", 1)[-1] + "-"
        for path in storage.list_files(join(root, run_id, call_id), ".jsonl"):
            if path.rsplit("/", 1)[-1].startswith(prefix):
                keys.update(r["request_key"] for r in read_records(storage, path))
    return keys


def parse_records(text: str) -> list[dict[str, Any]]:
    """Complete lines only (a line being appended may be cut)."""
    return parse_complete(text.encode("utf-8"))[0]


def parse_complete(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records on complete lines of ``data`` and the bytes they take (the rest is read next time)."""
    end = data.rfind(b"\n") + 1
    out = []
    for line in data[:end].split(b"\n")[:-1]:  # not splitlines(): U+2028 may sit inside a JSON string
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out, end


def read_records(storage: Storage, path: str) -> list[dict[str, Any]]:
    try:
        return parse_records(storage.read_text(path))
    except FileNotFoundError:  # committed and removed meanwhile
        return []


@dataclass
class Progress:
    """Incremental reader of one run's journals for the driver's progress line (any filesystem)."""

    storage: Storage
    folder: str
    seen: dict[str, int] = field(default_factory=dict)  # path -> bytes already read
    done: int = 0
    ok: int = 0
    tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def poll(self) -> list[dict[str, Any]]:
        """Read what the journals gained since the last poll; returns the new records."""
        new: list[dict[str, Any]] = []
        with self._lock:
            for path, size in self.storage.list_sizes(self.folder, ".jsonl").items():
                offset = self.seen.get(path, 0)
                if size <= offset:
                    continue
                try:
                    records, used = parse_complete(self.storage.read_from(path, offset))
                except FileNotFoundError:  # committed and removed meanwhile
                    continue
                self.seen[path] = offset + used
                new.extend(records)
                for rec in records:
                    self.done += 1
                    self.tokens += int(rec.get("completion_tokens") or 0)
                    if rec.get("status") == "ok":
                        self.ok += 1
                    for kind, n in (rec.get("errors_by_kind") or {}).items():
                        self.errors[kind] += int(n)
        return new

    def whole(self, path: str) -> bool:
        """Whether ``path`` was read to its end and is a whole object (batch journals are never appended to)."""
        return not appendable(path) and path in self.seen

    def forget(self, path: str) -> None:
        with self._lock:
            self.seen.pop(path, None)
