"""One writing driver at a time for a lakehouse whose Delta log cannot keep two drivers apart.

Delta commits version n of a table by creating ``_delta_log/<n>.json`` only if it is absent. On S3,
open-source Delta's default log store (``S3SingleDriverLogStore``, what EMR and self-managed Spark get)
can only check that inside one driver: two drivers committing to one table at the same moment both
write version n and one commit is lost without an error. Databricks (its commit service) and a
configured ``S3DynamoDBLogStore`` close that gap; HDFS, ABFS, GCS and local folders never had it.
Every mfr stage commits to tables it shares with the others (``runs``, ``quarantine``, ``images``,
``llm_calls``), so where the gap exists mfr runs one stage per lakehouse at a time: a lock object made
with S3's conditional put (``If-None-Match: *``), renewed by its holder, taken over only once its
holder's driver is gone (the run log's rule for abandoned runs) and only by one taker (``If-Match``).
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mfr.liveness import Heartbeat, driver_gone
from mfr.runlog import StageBusy
from mfr.session import conf_value
from mfr.storage import Storage, StorageError, join, scheme

if TYPE_CHECKING:  # pragma: no cover
    from mfr.lakehouse import Lakehouse

log = logging.getLogger(__name__)

_S3_SCHEMES = ("s3", "s3a", "s3n")
# Spark settings that choose Delta's log store, per scheme and for all schemes (the older key).
LOG_STORE_KEYS = tuple(f"spark.delta.logStore.{s}.impl" for s in _S3_SCHEMES) + ("spark.delta.logStore.class",)

# Holders whose lock this process holds now (a lock of this process's pid not among them was left behind).
_HELD: set[str] = set()


class LakehouseBusy(StageBusy):
    """Another driver holds the lakehouse where only one may write at a time."""


class LockLost(RuntimeError):
    """The lock was taken over while its run still ran (its renewals stopped for longer than
    ``runs.abandon_after_s``): the run's commits may have raced another driver's."""


def single_writer_reason(location: str | None, confs: Mapping[str, str | None], on_databricks: bool,
                         setting: bool | None) -> str | None:
    """Why only one driver may write the lakehouse at a time, or None when Delta keeps drivers apart.

    ``setting`` is ``runs.single_writer``: True or False decide; None looks at where the tables are,
    the platform, and the log store configured for their scheme."""
    if setting is not None:
        return "runs.single_writer is true" if setting else None
    if not location or on_databricks:
        return None
    kind = scheme(location)
    if kind not in _S3_SCHEMES:
        return None
    chosen = confs.get(f"spark.delta.logStore.{kind}.impl") or confs.get("spark.delta.logStore.class") or ""
    if "DynamoDB" in chosen:
        return None
    lift = "configure io.delta.storage.S3DynamoDBLogStore to run stages side by side"
    store = chosen.rsplit(".", 1)[-1] or "S3SingleDriverLogStore"
    if store != "S3SingleDriverLogStore":
        return f"tables on {kind}:// with the log store {chosen}, not known to keep drivers apart ({lift}, " \
               f"or runs.single_writer=false if it does)"
    return f"tables on {kind}:// with Delta's {store}, which keeps commits of one driver apart only ({lift})"


# Statements that commit to a table (what `mfr sql` holds the lock for); reads and DESCRIBE/SHOW do not.
_WRITING = {"INSERT", "UPDATE", "DELETE", "MERGE", "RESTORE", "ALTER", "DROP", "CREATE", "REPLACE", "TRUNCATE",
            "VACUUM", "OPTIMIZE", "REORG", "COPY", "CONVERT"}


def statement_writes(sql: str) -> bool:
    """True when the SQL statement's first keyword (comments and parentheses aside) commits to a table."""
    text = re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.S)
    words = re.findall(r"[A-Za-z_]+", text)
    return bool(words) and words[0].upper() in _WRITING


@dataclass
class WriterLock:
    """The lakehouse's writer lock, held by one run id."""

    storage: Storage
    path: str
    holder: str
    heartbeat_s: float
    abandon_after_s: float
    reason: str
    _token: str | None = None
    _heartbeat: Heartbeat | None = None
    lost: bool = False

    def _body(self) -> str:
        return json.dumps({"holder": self.holder, "host": socket.gethostname(), "pid": os.getpid(), "at": time.time(),
                           "why": self.reason})

    def acquire(self, attempts: int = 5) -> None:
        """Hold the lock, taking it over from a holder whose driver is gone; LakehouseBusy while another
        holder's driver is alive."""
        # Named as held before the lock is written: another run of this process that reads it in between
        # must not take it for a leftover of this process.
        _HELD.add(self.holder)
        try:
            self._take(attempts)
        except BaseException:
            _HELD.discard(self.holder)
            raise
        self._heartbeat = Heartbeat(self.heartbeat_s, self._renew, f"mfr-writer-lock-{self.holder}").start()

    def _take(self, attempts: int) -> None:
        for _ in range(attempts):
            try:
                self._token = self.storage.create_new(self.path, self._body())
            except StorageError as exc:
                raise StorageError(f"{exc}: the writer lock ({self.reason}) lives in the staging folder, which must be "
                                   f"on S3 or a local folder shared by every driver of the lakehouse (llm.staging_dir)") from None
            if self._token is not None:
                break
            found = self.storage.read_with_token(self.path)
            if found is None:  # released in between: try again
                continue
            text, token = found
            held = _parse(text)
            why_gone = driver_gone(held, float(held.get("at") or 0.0), time.time(), self.abandon_after_s,
                                   socket.gethostname())
            if (held.get("host") == socket.gethostname() and held.get("pid") == os.getpid()
                    and held.get("holder") not in _HELD):
                why_gone = "left by an earlier run of this process"  # its release failed (a store without conditional deletes)
            if not why_gone:
                raise LakehouseBusy(
                    f"the lakehouse is held by run {held.get('holder', '?')} on {held.get('host', '?')}: "
                    f"one stage at a time here ({self.reason}); wait for it, or if its driver is gone the lock "
                    f"is taken over after runs.abandon_after_s")
            self._token = self.storage.replace_if(self.path, token, self._body())
            if self._token is not None:
                log.warning("writer lock of run %s taken over (%s)", held.get("holder", "?"), why_gone)
                break
        if self._token is None:
            raise LakehouseBusy(f"the lakehouse's writer lock {self.path} changed hands {attempts} times while "
                                f"run {self.holder} tried to take it; try again")

    def _renew(self) -> bool:
        """One renewal; False once there is nothing more to renew (released, or taken over)."""
        token = self._token
        if token is None:
            return False
        try:
            renewed = self.storage.replace_if(self.path, token, self._body())
        except Exception as exc:  # a missed beat is not fatal while the next one lands in time
            log.warning("writer lock of %s not renewed: %s", self.holder, exc)
            return True
        if renewed is None:
            self.lost = True
            log.error("writer lock of run %s was taken over by another driver", self.holder)
            return False
        self._token = renewed
        return True

    def check(self) -> None:
        """Raise LockLost when another driver took the lock over."""
        if self.lost:
            raise LockLost(f"run {self.holder} lost the lakehouse's writer lock {self.path} to another driver "
                           f"(no renewal for runs.abandon_after_s)")

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop(wait=True)  # a renewal in progress ends before the token is read
        token, self._token = self._token, None
        _HELD.discard(self.holder)
        if token is None or self.lost:
            return
        try:
            if not self.storage.delete_if(self.path, token):
                log.warning("writer lock of run %s had changed before its release", self.holder)
        except Exception as exc:  # the lock is taken over once its renewals stop
            log.warning("writer lock of run %s not released: %s", self.holder, exc)


def _parse(text: str) -> dict:
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def lock_path(staging_root: str) -> str:
    return join(staging_root, "locks", "writer.json")


@contextmanager
def held(storage: Storage, staging_root: str, holder: str, reason: str | None, heartbeat_s: float,
         abandon_after_s: float) -> Iterator[WriterLock | None]:
    """Hold the writer lock for the block when ``reason`` says one is needed (else yield None)."""
    if reason is None:
        yield None
        return
    lock = WriterLock(storage, lock_path(staging_root), holder, heartbeat_s, abandon_after_s, reason)
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def reason_for(lh: Lakehouse) -> str | None:
    """``single_writer_reason`` for the lakehouse ``lh`` on its session."""
    setting = lh.cfg.settings.runs.single_writer
    if setting is not None:
        return single_writer_reason(None, {}, False, setting)
    if lh.on_databricks:  # its commit service keeps drivers apart: no need to look where the tables are
        return single_writer_reason(None, {}, True, None)
    location = lh.cfg.settings.lakehouse.location
    if not location:
        try:  # the schema's own location when it exists (one a catalog such as Glue already holds)
            location = lh.schema_location() if lh.spark.catalog.databaseExists(lh.namespace) else None
        except Exception:
            location = None
        location = location or conf_value(lh.spark, "spark.sql.warehouse.dir")  # where a new schema's tables go
    confs = {k: conf_value(lh.spark, k) for k in LOG_STORE_KEYS}
    return single_writer_reason(location, confs, False, None)


@contextmanager
def lakehouse_held(lh: Lakehouse, holder: str) -> Iterator[WriterLock | None]:
    """Hold the writer lock of ``lh`` for the block where one driver at a time may write it."""
    runs = lh.cfg.settings.runs
    with held(lh.storage, lh.staging_root, holder, reason_for(lh), float(runs.heartbeat_s),
              float(runs.abandon_after_s)) as lock:
        yield lock
