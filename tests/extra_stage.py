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


# Two stages with nothing to compute, for tests of what the runner does around any stage (publication, a
# failed run's version, pinning): `numbers` writes collection.max_samples rows (5 unless set), `doubled`
# reads them.
NUMBERS = Stage("numbers", "numbers", (), "tests.extra_stage:numbers")
DOUBLED = Stage("doubled", "doubled", ("numbers",), "tests.extra_stage:doubled")


def numbers(ctx: StageContext) -> StageOutput:
    n = int(ctx.cfg.settings.collection.max_samples or 5)
    rows = ctx.spark.range(n).selectExpr("CAST(id AS STRING) AS sample_key", "CAST(NULL AS STRING) AS reject_reason")
    return StageOutput(rows, n)


def doubled(ctx: StageContext) -> StageOutput:
    rows = ctx.read_input("numbers").selectExpr("sample_key", "CAST(sample_key AS INT) * 2 AS twice", "reject_reason")
    return StageOutput(rows, ctx.read_input("numbers").count())


@contextmanager
def registered(*stages: Stage) -> Iterator[Stage]:
    """The stages (the question-words one by default) registered for the block, then removed (the rest of
    the suite sees the five stages); yields the first."""
    stages = stages or (STAGE,)
    for stage in stages:
        register(stage)
    try:
        yield stages[0]
    finally:
        for stage in stages:
            unregister(stage.name)
