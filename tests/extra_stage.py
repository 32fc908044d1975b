"""A stage from outside the package, for the registry test: the words of each question collect kept, in a
table of its own. One module and one ``register()`` call are all it takes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.sql import functions as F

from mfr.stages.common import StageContext, StageOutput
from mfr.stages.registry import Stage, register, unregister

STAGE = Stage("question_words", "question_words", ("collected",), "tests.extra_stage:question_words")


def question_words(ctx: StageContext) -> StageOutput:
    kept = ctx.read_input("collected").where(F.col("reject_reason").isNull())
    rows = kept.select("sample_key", "source", F.size(F.split(F.trim("question"), r"\s+")).alias("words"),
                       F.lit(None).cast("string").alias("reject_reason"))

    def after_write(spark, lh, version: int) -> dict[str, float]:  # the runner calls it once the rows are written
        return {"question_words.mean": float(lh.read("question_words", version).agg(F.avg("words")).first()[0])}

    return StageOutput(rows, kept.count(), after_write=after_write)


@contextmanager
def registered() -> Iterator[Stage]:
    """The stage registered for the block, then removed (the rest of the suite sees the five stages)."""
    register(STAGE)
    try:
        yield STAGE
    finally:
        unregister(STAGE.name)
