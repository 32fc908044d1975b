"""Call journals: finished calls written by the task that made them, as whole objects, a batch at a time.

A journal is the crash-safety net under the Delta commits: if the driver dies mid-shard, the calls that
finished are in the journal and the next run stores them before asking for anything, so a killed job
loses at most the calls in flight (and those finished within the last ``flush_s``). Journals are also
what the driver reads to show progress. Each batch is its own object (nothing is appended: object stores
have no append and Volumes' FUSE mount refuses it), named
``<dir>/<run_id>/calls/shard-<s>-part-<p>-attempt-<a>-<n>.jsonl``; objects never change once written,
so a reader that has seen a name never reads it again.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mfr.storage import Storage, join


class JournalWriter:
    """Buffers finished calls; writes them as one object once ``batch`` are waiting or the oldest has
    waited ``flush_s`` (a timer thread flushes a quiet buffer too), and on close."""

    def __init__(self, storage: Storage, prefix: str, batch: int = 64, flush_s: float = 2.0):
        self.storage, self.prefix, self.batch, self.flush_s = storage, prefix, batch, flush_s
        self._buf: list[str] = []
        self._since = 0.0
        self._seq = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._tick, daemon=True)
        self._timer.start()

    def write(self, record: dict[str, Any]) -> None:
        with self._lock:
            if not self._buf:
                self._since = time.monotonic()
            self._buf.append(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            if len(self._buf) >= self.batch:
                self._flush()

    def _tick(self) -> None:
        while not self._closed.wait(self.flush_s / 2):
            with self._lock:
                if self._buf and time.monotonic() - self._since >= self.flush_s:
                    self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        data = "".join(self._buf).encode("utf-8")
        self.storage.write_bytes(f"{self.prefix}-{self._seq:06d}.jsonl", data)
        self._seq += 1
        self._buf = []

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            self._flush()


def journal_prefix(root: str, run_id: str, shard: int, partition: int, attempt: int) -> str:
    return join(root, run_id, "calls", f"shard-{shard}-part-{partition}-attempt-{attempt}")


def parse_records(text: str) -> list[dict[str, Any]]:
    """Complete lines only (a local object is renamed into place whole, but be lenient with a cut line)."""
    out = []
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


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
    seen: set[str] = field(default_factory=set)
    done: int = 0
    ok: int = 0
    tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def poll(self) -> None:
        with self._lock:
            for path in self.storage.list_files(self.folder, ".jsonl"):
                if path in self.seen:
                    continue
                self.seen.add(path)
                for rec in read_records(self.storage, path):
                    self.done += 1
                    self.tokens += int(rec.get("completion_tokens") or 0)
                    if rec.get("status") == "ok":
                        self.ok += 1
                    for kind, n in (rec.get("errors_by_kind") or {}).items():
                        self.errors[kind] += int(n)
