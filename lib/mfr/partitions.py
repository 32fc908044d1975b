"""Run a function once per partition inside the Spark tasks, on classic Spark and Spark Connect alike.

``mapInPandas`` is the one per-partition hook both session kinds share (there is no RDD API on Connect).
Only one integer per partition comes back to the driver, never rows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame

PartitionFn = Callable[[Iterator[dict[str, Any]], int], int]


def _plain(value: Any) -> Any:
    # pandas turns a null double (and a null long) into NaN: a row gets its null back
    return None if isinstance(value, float) and math.isnan(value) else value


def rows_of(batches: Iterable[pd.DataFrame]) -> Iterator[dict[str, Any]]:
    """The rows of a partition's Arrow batches as dicts (structs as dicts, nulls as None)."""
    for batch in batches:
        columns = list(batch.columns)
        for values in batch.itertuples(index=False, name=None):
            yield {c: _plain(v) for c, v in zip(columns, values)}


def run_per_partition(df: DataFrame, fn: PartitionFn) -> int:
    """``fn(rows, partition_id)`` once for every partition of ``df`` (empty ones too); the sum of its results."""

    def task(batches: Iterable[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from pyspark import TaskContext

        context = TaskContext.get()
        part = context.partitionId() if context is not None else 0
        yield pd.DataFrame({"n": [int(fn(rows_of(batches), part))]})

    return int(sum(r["n"] for r in df.mapInPandas(task, "n long").collect()))
