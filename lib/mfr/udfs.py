"""Thin pandas-UDF wrappers over the pure functions (the Spark glue, nothing else)."""

from __future__ import annotations

from typing import Iterator

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.column import Column

# Types as objects, not DDL strings: parsing DDL needs a live session at import time.
IMAGE_INFO_TYPE = T.StructType(
    [T.StructField("width", T.IntegerType()), T.StructField("height", T.IntegerType()), T.StructField("format", T.StringType())]
)


@F.pandas_udf(IMAGE_INFO_TYPE)  # type: ignore[call-overload]
def image_info_udf(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    from mfr.image.info import image_info

    for data in batches:
        infos = [image_info(b) for b in data]
        yield pd.DataFrame(
            {
                "width": pd.array([i.width if i else None for i in infos], dtype="Int32"),
                "height": pd.array([i.height if i else None for i in infos], dtype="Int32"),
                "format": [i.format if i else None for i in infos],
            }
        )


def image_info_col(bytes_col: str | Column) -> Column:
    return image_info_udf(F.col(bytes_col) if isinstance(bytes_col, str) else bytes_col)
