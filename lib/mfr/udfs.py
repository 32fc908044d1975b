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


_PNG_SIGNATURE = bytes.fromhex("89504e470d0a1a0a")


def _big_endian(data: Column, start: int, length: int) -> Column:
    """The unsigned big-endian integer in ``length`` bytes of ``data`` from ``start`` (1-based)."""
    return F.conv(F.hex(F.substring(data, start, length)), 16, 10).cast("long")


# Bytes of a non-PNG image sent to Python first: its header (JPEG markers up to the start of scan, GIF,
# WebP, BMP) fits in them, so most images cross as 4 KB instead of whole (the real dump's JPEGs: ~20 KB).
# (Walking JPEG markers in the JVM with SQL higher-order functions measured ~3x slower than this.)
HEADER_BYTES = 4096


def image_info_col(bytes_col: str | Column) -> Column:
    """Width, height and format from the image header (``IMAGE_INFO_TYPE``), null when unreadable.

    A PNG's size sits at fixed offsets of its IHDR chunk, read here in the JVM. Other images cross to
    Python (``mfr.image.info``) as their first ``HEADER_BYTES``; only those whose header is not readable
    from that prefix (a large EXIF block, a long GIF comment, a TIFF directory at the end) cross again
    whole, so the answer is the reader's answer on the whole image. (The JVM path does not check the IHDR
    checksum; corruption is decided by clean.)"""
    data = F.col(bytes_col) if isinstance(bytes_col, str) else bytes_col
    width, height = _big_endian(data, 17, 4), _big_endian(data, 21, 4)
    png = (
        (F.substring(data, 1, 8) == F.lit(_PNG_SIGNATURE)) & (F.substring(data, 13, 4) == F.lit(b"IHDR"))
        & (F.length(data) >= 24) & width.between(1, 2**31 - 1) & height.between(1, 2**31 - 1)
    )
    png = F.coalesce(png, F.lit(False))
    from_header = F.struct(width.cast("int").alias("width"), height.cast("int").alias("height"), F.lit("PNG").alias("format"))
    from_prefix = image_info_udf(F.when(~png, F.substring(data, 1, HEADER_BYTES)))
    retry = ~png & from_prefix["format"].isNull() & (F.length(data) > HEADER_BYTES)
    from_whole = image_info_udf(F.when(retry, data))
    return F.when(png, from_header).when(retry, from_whole).otherwise(from_prefix)


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
        T.StructField("phash", T.LongType()),
        T.StructField("dhash", T.LongType()),
    ]
)


def _fingerprints(data: bytes | None) -> tuple[int | None, int | None]:
    """(pHash, dHash) of encoded bytes; (None, None) where they do not decode: such a row compares by its
    question alone."""
    from mfr.dedup.fingerprint import fingerprints

    try:
        return fingerprints(data) if data else (None, None)
    except Exception:
        return None, None


def _hash_columns(prints: list[tuple[int | None, int | None]]) -> dict[str, pd.api.extensions.ExtensionArray]:
    return {"phash": pd.array([p for p, _ in prints], dtype="Int64"), "dhash": pd.array([d for _, d in prints], dtype="Int64")}


def clean_image_udf(max_size: int, max_pixels: int, fingerprint: bool = False):
    """Iterator pandas UDF: one Arrow batch of image bytes at a time, one decoded image at a time. With
    ``fingerprint``, each kept image's pHash and dHash (of the image as cleaned) come in the same pass."""

    @pandas_udf(CLEANED_IMAGE_TYPE)
    def clean_images(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from mfr.image.clean import clean_image

        for data in batches:
            rs = [clean_image(b, max_size, max_pixels) for b in data]
            prints = [_fingerprints(r.data or b) if fingerprint and r.reject is None else (None, None)
                      for r, b in zip(rs, data)]
            yield pd.DataFrame(
                {
                    "reject": [r.reject for r in rs],
                    "data": [r.data for r in rs],
                    "width": pd.array([r.width for r in rs], dtype="Int32"),
                    "height": pd.array([r.height for r in rs], dtype="Int32"),
                    "format": [r.format for r in rs],
                    "actions": [r.actions for r in rs],
                    "detail": [r.detail for r in rs],
                    **_hash_columns(prints),
                }
            )

    return clean_images


@pandas_udf(T.StructType([T.StructField("phash", T.LongType()), T.StructField("dhash", T.LongType())]))
def fingerprint_images(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
    """(pHash, dHash) of each image as stored (images not cleaned); null where the bytes do not decode."""
    for data in batches:
        yield pd.DataFrame(_hash_columns([_fingerprints(b) for b in data]))
