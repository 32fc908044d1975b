"""Pieces every stage shares: its context (and the model-call context it builds), the output it hands to the
runner, intermediates written once (``persist``), key and reason columns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.column import Column

from mfr import reasons
from mfr.config import Config
from mfr.keys import KEY_SEPARATOR
from mfr.session import job_description

if TYPE_CHECKING:  # pragma: no cover
    from mfr.incremental import Plan
    from mfr.lakehouse import Lakehouse, Run
    from mfr.llm.context import CallContext


@dataclass
class StageContext:
    """What a stage function gets: the session, config, its run id, and pinned input versions."""

    spark: SparkSession
    cfg: Config
    run: Run
    lakehouse: Lakehouse
    input_versions: dict[str, int] = field(default_factory=dict)
    plan: Plan | None = None  # what this run may reuse from the stage's last one (mfr.incremental)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def incremental(self) -> bool:
        return self.plan is not None and self.plan.mode == "incremental"

    def to_process(self, rows: DataFrame) -> DataFrame:
        """The rows of ``rows`` this run computes: all of them, or in an incremental run the stale ones."""
        if not self.incremental or self.plan is None or self.plan.stale is None:
            return rows
        return rows.join(self.plan.stale, "sample_key", "left_semi")

    def stale(self) -> DataFrame | None:
        """Keys an incremental run computes again or removes (None in a full run)."""
        return self.plan.stale if self.incremental and self.plan is not None else None

    def carried(self, table: str) -> DataFrame | None:
        """The rows of the stage's last output that an incremental run keeps as they are (None otherwise)."""
        if not self.incremental or self.plan is None or self.plan.stale is None:
            return None
        last = self.lakehouse.read(table, self.plan.previous_version)
        return last.join(self.plan.stale, "sample_key", "left_anti")

    def read_input(self, table: str) -> DataFrame:
        """An input table at the version this run pinned."""
        return self.lakehouse.read(table, self.input_versions[table])

    def calls(self) -> CallContext:
        """The model-call layer's context for this run: calls stored in ``llm_calls`` (each batch one
        idempotent commit carrying the run), images from ``images``, journals and intermediates under the
        lakehouse's staging root; journals of another live run are left to it."""
        from mfr.llm.context import CallContext
        from mfr.runlog import RunLog

        lh, run = self.lakehouse, self.run
        return CallContext(
            spark=self.spark, run_id=run.run_id, label=run.stage, storage=lh.storage, staging_root=lh.staging_root,
            settings=self.cfg.settings.llm, stored=lambda: lh.read("llm_calls"),
            commit=lambda df, app_id, batch: lh.append_once(df, "llm_calls", run, app_id, batch),
            images=lambda: lh.read("images"), busy_runs=lambda: RunLog(lh).live_run_ids(),
            stage_frame=lambda df, name: persist(self, df, name),
        )


def persist(ctx: StageContext, df: DataFrame, name: str) -> DataFrame:
    """Write an intermediate of the run to staging and read it back: computed once, lineage cut."""
    with job_description(ctx.spark, f"mfr {ctx.run.stage}: {name}"):
        return ctx.lakehouse.stage(df, ctx.run_id, name)


@dataclass
class StageOutput:
    """What a stage computed; the runner writes it and checks the accounting.

    ``rows`` holds every row that reached the stage (``reject_reason`` null when kept). ``quarantine``
    holds records that cannot be rows (sample_key, source, reason, raw_record, source_file).
    ``rows_in`` is counted independently of ``rows`` so that rows_in = kept + rejected + quarantined
    is a real check. ``images`` (image_id, bytes, width, height, format; unique ids) are stored first.
    """

    rows: DataFrame
    rows_in: int
    quarantine: DataFrame | None = None
    images: DataFrame | None = None
    image_origin: str = ""
    # (spark, lakehouse, written version) -> extra metrics; runs after the output version is written
    after_write: Callable[..., dict[str, float]] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # an incremental run that found nothing to do: nothing is written, the table's version stays
    nothing_new: bool = False
    # an incremental run: keys of the only rows that may differ from the table (None: any may)
    candidates: DataFrame | None = None

    def __post_init__(self) -> None:
        # a plain Python int: Spark 3.5's Connect client counts in numpy integers, which no JSON writer
        # takes (mfr run --json)
        self.rows_in = int(self.rows_in)


def with_carried(ctx: StageContext, out: DataFrame, table: str) -> DataFrame:
    """``out`` (the rows this run computed) and, in an incremental run, the rows of the stage's last output
    carried as they are."""
    carried = ctx.carried(table)
    return out if carried is None else out.unionByName(carried.select(*out.columns))


def reason(stage: str, name: str) -> Column:
    """A registered reject code as a literal; UnknownReason (when the step is built) if it is not registered."""
    return F.lit(reasons.code(stage, name))


def sample_key_col(source: Column, sample_id: Column) -> Column:
    """Spark form of ``mfr.keys.sample_key`` (same string for the same source and id)."""
    return F.concat_ws(KEY_SEPARATOR, source, sample_id.cast("string"))


def blank(col: Column) -> Column:
    return col.isNull() | (F.trim(col) == "")
