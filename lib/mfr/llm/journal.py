"""Call journals: every finished call is appended (one JSON line, flushed) by the task that made it.

A journal is the crash-safety net under the Delta commits: if the driver dies mid-shard, the calls that
finished are in the journal and the next run stores them before asking for anything, so a killed job
loses at most the calls that were in flight. Journals are also what the driver reads to show progress.
Files: ``<dir>/<run_id>/<purpose>/shard-<s>-part-<p>-attempt-<a>.jsonl``.
"""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any


class JournalWriter:
    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[str] = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held for the whole task, closed by close()

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


def journal_path(root: str, run_id: str, purpose: str, shard: int, partition: int, attempt: int) -> str:
    return os.path.join(root, run_id, purpose, f"shard-{shard}-part-{partition}-attempt-{attempt}.jsonl")


def read_records(path: Path) -> list[dict[str, Any]]:
    """Complete lines only: the last line of a killed writer may be cut short."""
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                break
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


@dataclass
class Progress:
    """Incremental reader of one run's journals (local folders) for the driver's progress line."""

    folder: Path
    offsets: dict[Path, int] = field(default_factory=dict)
    done: int = 0
    ok: int = 0
    tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def poll(self) -> None:
        with self._lock:
            self._poll()

    def _poll(self) -> None:
        if not self.folder.is_dir():
            return
        for path in list(self.folder.rglob("*.jsonl")):
            start = self.offsets.get(path, 0)
            try:
                with open(path, encoding="utf-8") as fh:
                    fh.seek(start)
                    chunk = fh.read()
            except FileNotFoundError:  # committed and removed meanwhile
                continue
            complete = chunk[: chunk.rfind("\n") + 1]
            self.offsets[path] = start + len(complete.encode("utf-8"))
            for line in complete.splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.done += 1
                self.tokens += int(rec.get("completion_tokens") or 0)
                if rec.get("status") == "ok":
                    self.ok += 1
                for kind, n in (rec.get("errors_by_kind") or {}).items():
                    self.errors[kind] += int(n)
