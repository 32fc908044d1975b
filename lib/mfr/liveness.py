"""Liveness of a driver: a heartbeat thread, the lease object a running stage keeps fresh under
``<staging>/leases/<run_id>.json``, and the rule that says a driver is gone (its process ended on this host,
or no beat for ``runs.abandon_after_s``). The run log abandons runs by it; the writer lock takes a lock over by
it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from mfr.storage import Storage, join

log = logging.getLogger(__name__)


class Heartbeat:
    """``beat()`` every ``interval_s`` seconds on a daemon thread, until stopped or ``beat`` returns False."""

    def __init__(self, interval_s: float, beat: Callable[[], bool], name: str):
        self.interval_s, self._beat = interval_s, beat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=name)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            if not self._beat():
                return

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self, wait: bool = False) -> None:
        """Stop beating; ``wait`` for a beat in progress to end."""
        self._stop.set()
        if wait and self._thread.is_alive():
            self._thread.join()


class Lease:
    """The driver's proof of life for one run: an object rewritten every ``heartbeat_s`` seconds."""

    def __init__(self, storage: Storage, staging_root: str, run_id: str, heartbeat_s: float):
        self.storage, self.run_id = storage, run_id
        self.path = lease_path(staging_root, run_id)
        self._heartbeat = Heartbeat(heartbeat_s, self._renew, f"mfr-lease-{run_id}")

    def _write(self) -> None:
        body = {"run_id": self.run_id, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time()}
        self.storage.write_text(self.path, json.dumps(body))

    def _renew(self) -> bool:
        try:
            self._write()
        except Exception as exc:  # a missed beat is not fatal; a stale lease only lets the run be abandoned
            log.warning("lease of %s not renewed: %s", self.run_id, exc)
        return True

    def start(self) -> Lease:
        self._write()
        self._heartbeat.start()
        return self

    def stop(self) -> None:
        self._heartbeat.stop()
        try:
            self.storage.delete(self.path)
        except Exception as exc:  # the run's row already says how it ended
            log.warning("lease of %s not removed: %s", self.run_id, exc)


def lease_path(staging_root: str, run_id: str) -> str:
    return join(staging_root, "leases", f"{run_id}.json")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def driver_gone(lease: dict[str, Any] | None, started_at: float, now: float, abandon_after_s: float,
                host: str) -> str | None:
    """Why a ``running`` run's driver is gone, or None while it may be alive."""
    if lease is None:
        return "no lease" if now - started_at > abandon_after_s else None
    if lease.get("host") == host and not _pid_alive(int(lease.get("pid") or 0)):
        return f"driver process {lease.get('pid')} on {host} is gone"
    age = now - float(lease.get("at") or 0)
    return f"no heartbeat for {age:.0f}s" if age > abandon_after_s else None
