"""Incremental runs: what a stage run may reuse from its stage's last succeeded run.

A run is **incremental** when ``runs.incremental`` is on, neither ``--full`` nor ``--from-run`` is given, the
stage's last succeeded run exists, ran the same code (``code_version``) with the same values in the config
sections the stage reads (``Stage.settings``), read the same tables, and its output version is still the
table's current and published one. Anything else is a **full** run, as before, and says why.

How an incremental run reuses the last one depends on the stage (``Stage.incremental``):

* ``rows`` (clean, distill, select): the input's kept rows at the version the last run read and at the one
  this run reads are compared by ``sample_key`` and a digest of every column but ``run_id``. Rows new or
  changed, rows whose key left the input, and rows the last run rejected with a code a rerun asks again
  (``reasons.retried``) are *stale*; the stage computes only the stale keys still in its input and carries
  every other row of its last output as it is. With nothing stale the run is **skipped**: no compute, no
  write, the table's version stays.
* ``files`` (collect): dump subsets whose files (path, size, modification time, columns) are those the last
  run read keep their rows; the others are read again (``mfr.stages.collect``).
* ``whole`` (export): skipped when its inputs are the versions the last run read, else full.

An incremental run's output is MERGEd into the table by ``sample_key`` (``Lakehouse.merge_stage_output``):
rows whose content did not change are not rewritten, and a run that changes nothing commits nothing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr import reasons
from mfr.config import Config
from mfr.lakehouse import code_version

if TYPE_CHECKING:  # pragma: no cover
    from mfr.lakehouse import Lakehouse, Run
    from mfr.stages.registry import Stage

FULL, INCREMENTAL, SKIP = "full", "incremental", "skip"
DIGEST_COLUMN = "_mfr_digest"


@dataclass
class Plan:
    """The case that applies to a run: ``mode`` (full, incremental or skip) and one line saying why."""

    mode: str
    why: str
    previous: dict[str, Any] | None = None  # the stage's last succeeded run (its row of mfr.runs)
    stale: DataFrame | None = None  # rows stages: sample_key of every row not carried from the last output
    counts: dict[str, int] = field(default_factory=dict)  # rows_processed, rows_removed, rows_retried

    @property
    def previous_version(self) -> int | None:
        return None if self.previous is None else int(self.previous["output_version"])

    def line(self) -> str:
        """What the run printed and recorded (``mfr.runs.mode``)."""
        return self.mode if self.mode == FULL and not self.why else f"{self.mode}: {self.why}"


def section(tree: dict[str, Any], dotted: str) -> Any:
    node: Any = tree
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def settings_digest(tree: dict[str, Any], sections: tuple[str, ...]) -> str:
    """A digest of the (redacted) values of ``sections`` in a config tree: equal when a stage would compute
    the same output from the same input."""
    blob = json.dumps({s: section(tree, s) for s in sections}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def changed_sections(before: dict[str, Any], now: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """The keys (dotted, one level below each section) whose values differ between two config trees."""
    out = []
    for s in sections:
        a, b = section(before, s), section(now, s)
        if isinstance(a, dict) and isinstance(b, dict):
            out += [f"{s}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
        elif a != b:
            out.append(s)
    return out


def why_full(spec: Stage, cfg: Config, previous: dict[str, Any] | None, inputs: dict[str, int],
             from_run: str | None, full: bool) -> str | None:
    """None when the run may reuse ``previous`` (the stage's last succeeded run), else the reason it may not.
    The table's own state is checked apart (``table_moved``)."""
    if not cfg.settings.runs.incremental:
        return "runs.incremental is false"
    if full:
        return "--full"
    if from_run:
        return "--from-run"
    if spec.incremental is None:
        return f"{spec.name} has no incremental mode"
    if previous is None or previous.get("output_version") is None:
        return f"no earlier succeeded {spec.name} run"
    ran = previous.get("code_version")
    if ran != code_version():
        return f"code changed since run {previous['run_id']} ({ran} → {code_version()})"
    before = json.loads(previous.get("config_json") or "{}")
    changed = changed_sections(before, cfg.redacted(), spec.settings)
    if changed:
        return f"settings changed since run {previous['run_id']}: {', '.join(changed[:6])}"
    if set(previous.get("input_versions") or {}) != set(inputs):
        return f"reads other tables than run {previous['run_id']}"
    return None


def table_moved(lh: Lakehouse, table: str, previous: dict[str, Any], published: int | None) -> str | None:
    """Why the output table is no longer what ``previous`` wrote (a publish, a restore, a failed run's
    version), else None: only then may rows be carried from it and MERGEd into it."""
    version = int(previous["output_version"])
    if published != version:
        return f"{lh.name(table)} was published at version {published} since run {previous['run_id']}"
    current = lh.current_version(table)
    if current != version:
        return f"{lh.name(table)} is at version {current}, not run {previous['run_id']}'s {version}"
    return None


def row_digest(df: DataFrame, skip: tuple[str, ...] = ("run_id",)) -> Column:
    """A 64-bit digest of a row's content (every column but ``skip``), for change detection (not against an
    adversary). Spark's hash skips nulls, so each column is followed by its null flag: a value moved to
    another column changes the digest. Maps (which Spark does not hash) go in as JSON."""
    parts: list[Column] = []
    for f in df.schema.fields:
        if f.name in skip or f.name == DIGEST_COLUMN:
            continue
        col = F.to_json(F.col(f.name)) if isinstance(f.dataType, T.MapType) else F.col(f.name)
        parts += [col, F.col(f.name).isNull()]
    return F.xxhash64(*parts)


def input_changes(old: DataFrame, new: DataFrame) -> DataFrame:
    """sample_key of rows that differ between two versions of an input (kept rows only): new, changed
    (by content) or gone."""
    kept_old = old.where(F.col("reject_reason").isNull())
    kept_new = new.where(F.col("reject_reason").isNull())
    a = kept_old.select("sample_key", row_digest(kept_old).alias("_a"))
    b = kept_new.select("sample_key", row_digest(kept_new).alias("_b"))
    return a.join(b, "sample_key", "full_outer").where(~F.col("_a").eqNullSafe(F.col("_b"))).select("sample_key")


FEED_META = ("_change_type", "_commit_version", "_commit_timestamp")


def feed_changes(feed: DataFrame) -> DataFrame:
    """sample_key of rows whose kept content differs between the versions before and after a change data feed
    (``Lakehouse.changes``): per key, the first record in commit order is its state before (a preimage or a
    delete; an insert means it was absent) and the last its state after (an insert or a postimage; a delete
    means it is gone); a row not kept (``reject_reason`` set) counts as absent. Only the changed files are read."""
    data = feed.select(*[c for c in feed.columns if c not in FEED_META])
    kind = F.col("_change_type")
    pre, post = kind.isin("update_preimage", "delete"), kind.isin("insert", "update_postimage")
    kept = F.col("reject_reason").isNull()
    order = F.struct(F.col("_commit_version"), F.when(pre, F.lit(0)).otherwise(F.lit(1)))
    digest = row_digest(data)
    per_key = feed.select(
        "sample_key", order.alias("_order"),
        F.when(pre & kept, digest).alias("_before"), F.when(post & kept, digest).alias("_after"),
    ).groupBy("sample_key").agg(
        F.min_by(F.struct("_before"), F.col("_order")).alias("_first"),
        F.max_by(F.struct("_after"), F.col("_order")).alias("_last"),
    )
    return per_key.where(~F.col("_first._before").eqNullSafe(F.col("_last._after"))).select("sample_key")


def changed_input(lh: Lakehouse, table: str, before: int, now: int, run: Run) -> tuple[DataFrame, bool]:
    """(keys of an input's kept rows that differ between two versions (staged), whether the change data feed
    gave them): from the feed where the table records it for the range, else by reading both versions whole."""
    try:  # staged inside: a table without the feed for the range fails here, not in a later job
        return lh.stage(feed_changes(lh.changes(table, before + 1, now)), run.run_id, "changed-keys"), True
    except Exception:  # a table made before the feed was on, or versions older than its start
        return lh.stage(input_changes(lh.read(table, before), lh.read(table, now)), run.run_id, "changed-keys"), False


def stale_rows(lh: Lakehouse, spec: Stage, spec_cfg: Config, previous: dict[str, Any], inputs: dict[str, int],
               run: Run) -> tuple[DataFrame, dict[str, int]]:
    """(sample_key of every row an incremental run of a rows stage computes again or removes, counts): rows
    whose input changed or left, rows the last run rejected with a retried code, and the keys the stage adds
    (``Stage.also_stale``). Staged once."""
    stage, table = spec.name, spec.table
    keys: DataFrame | None = None
    before = previous.get("input_versions") or {}
    name, version = next(iter(inputs.items()))  # the rows' table (others are side inputs, e.g. distill's verdicts)
    by_feed = None
    if int(before[name]) != int(version):
        keys, by_feed = changed_input(lh, name, int(before[name]), version, run)
    also = spec.stale_keys(lh, spec_cfg, inputs, int(previous["output_version"]))
    if also is not None:
        keys = also if keys is None else keys.unionByName(also)
    retried = sorted(reasons.retried(stage))
    last = lh.read(table, int(previous["output_version"]))
    again = last.where(F.col("reject_reason").isin(retried)).select("sample_key") if retried else None
    keys = again if keys is None else keys if again is None else keys.unionByName(again)
    if keys is None:
        keys = last.where(F.lit(False)).select("sample_key")
    stale = lh.stage(keys.distinct(), run.run_id, "stale-keys")
    current = lh.read(name, version).where(F.col("reject_reason").isNull())
    counted = stale.join(current.select("sample_key", F.lit(1).alias("_in")), "sample_key", "left").join(
        last.select("sample_key", F.col("reject_reason").isin(retried or [""]).alias("_retried")), "sample_key", "left"
    ).agg(
        F.count(F.lit(1)).alias("stale"),
        F.sum(F.coalesce(F.col("_in"), F.lit(0))).alias("processed"),
        F.sum(F.coalesce(F.col("_retried"), F.lit(False)).cast("int")).alias("retried"),
    ).collect()[0]
    processed = int(counted["processed"] or 0)
    counts = {"rows_processed": processed, "rows_removed": int(counted["stale"]) - processed,
              "rows_retried": int(counted["retried"] or 0)}
    if by_feed is not None:
        counts["input_from_change_feed"] = int(by_feed)
    return stale, counts
