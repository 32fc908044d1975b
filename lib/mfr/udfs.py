"""Thin pandas-UDF wrappers over the pure functions (the Spark glue, nothing else)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.column import Column

from mfr.vectorized import pandas_udf

# Types as objects, not DDL strings: parsing DDL needs a live session at import time.
IMAGE_INFO_TYPE = T.StructType(
    [T.StructField("width", T.IntegerType()), T.StructField("height", T.IntegerType()), T.StructField("format", T.StringType())]
)


@pandas_udf(IMAGE_INFO_TYPE)
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


CLEANED_TEXT_TYPE = T.StructType(
    [
        T.StructField("text", T.StringType()),
        T.StructField("actions", T.ArrayType(T.StringType())),
        T.StructField("language", T.StringType()),
        T.StructField("routes", T.ArrayType(T.StringType())),
    ]
)


@pandas_udf(CLEANED_TEXT_TYPE)
def clean_question_udf(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    from mfr.text.routing import clean_question

    for texts in batches:
        rs = [clean_question(t) for t in texts]
        yield pd.DataFrame(
            {"text": [r.text for r in rs], "actions": [r.actions for r in rs],
             "language": [r.language for r in rs], "routes": [r.routes for r in rs]}
        )


@pandas_udf(T.StringType())
def extract_answer_udf(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
    from mfr.answers.extract import extract_answer

    for solutions in batches:
        yield pd.Series([extract_answer(s) for s in solutions], dtype="object")


CLEANED_IMAGE_TYPE = T.StructType(
    [
        T.StructField("reject", T.StringType()),
        T.StructField("data", T.BinaryType()),
        T.StructField("width", T.IntegerType()),
        T.StructField("height", T.IntegerType()),
        T.StructField("format", T.StringType()),
        T.StructField("actions", T.ArrayType(T.StringType())),
        T.StructField("detail", T.StringType()),
    ]
)


def clean_image_udf(max_size: int, max_pixels: int):
    """Iterator pandas UDF: one Arrow batch of image bytes at a time, one decoded image at a time."""

    @pandas_udf(CLEANED_IMAGE_TYPE)
    def clean_images(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from mfr.image.clean import clean_image

        for data in batches:
            rs = [clean_image(b, max_size, max_pixels) for b in data]
            yield pd.DataFrame(
                {
                    "reject": [r.reject for r in rs],
                    "data": [r.data for r in rs],
                    "width": pd.array([r.width for r in rs], dtype="Int32"),
                    "height": pd.array([r.height for r in rs], dtype="Int32"),
                    "format": [r.format for r in rs],
                    "actions": [r.actions for r in rs],
                    "detail": [r.detail for r in rs],
                }
            )

    return clean_images
