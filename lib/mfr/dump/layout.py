"""The HF dump's layout and columns, and their mapping to the lakehouse's canonical names (pure).

A dump is ``<root>/<subset>/**/*.parquet`` (one folder per HF config), or parquet files directly under
``<root>`` (one subset named ``default``). Column types are compared as simple kinds so that the same
checks serve pyarrow schemas (local files) and Spark schemas (object stores).
"""

from __future__ import annotations

from dataclasses import dataclass

# Column kinds: string, int, float, bool, binary, image (struct with a binary ``bytes`` field), null
# (a column that is null in every row of a file: compatible with anything), other:<type>.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "id": ("int",),
    "question": ("string",),
    "answer": ("string",),
}

OPTIONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "source": ("string",),
    "ori_question": ("string",),
    "original_answer": ("string",),
    "image": ("image", "binary"),
    "caption": ("string",),
    "qwen3vl_235b_thinking_response": ("string",),
    "qwen3vl_4b_pass_rate": ("float", "int"),
    "pass_rate": ("float", "int"),
    "is_consistent": ("bool",),
    "consistency_analysis": ("string",),
}

# dump name -> canonical lakehouse name (contract in DESIGN.md); the HF export maps them back.
DUMP_TO_CANONICAL: dict[str, str] = {
    "ori_question": "original_question",
    "qwen3vl_235b_thinking_response": "cot_response",
    "qwen3vl_4b_pass_rate": "source_pass_rate",
    "pass_rate": "source_pass_rate",
    "is_consistent": "source_is_consistent",
    "consistency_analysis": "source_consistency_analysis",
}

DEFAULT_SUBSET = "default"


class DumpError(ValueError):
    """The dump cannot be read as asked; raised before anything is written."""


@dataclass(frozen=True)
class DumpFile:
    subset: str
    path: str
    columns: dict[str, str]  # name -> kind
    num_rows: int | None = None
    size: int | None = None  # bytes, as listed
    modified: int | None = None  # modification time as listed (ns locally, ms on an object store)


def subset_digests(files: list[DumpFile]) -> dict[str, int]:
    """Per subset, a digest of its files as listed (path, size, modification time, columns): equal when the
    subset's files are the ones an earlier collect read. 52 bits, so that it travels exactly as a float metric."""
    import hashlib

    out: dict[str, int] = {}
    for subset in sorted({f.subset for f in files}):
        mine = sorted((f.path, f.size, f.modified, sorted(f.columns.items())) for f in files if f.subset == subset)
        out[subset] = int(hashlib.sha256(repr(mine).encode()).hexdigest()[:13], 16)
    return out


def column_problems(columns: dict[str, str]) -> list[str]:
    """What is wrong with one file's columns: missing required ones, known ones of the wrong kind."""
    problems = []
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        problems.append(f"missing required column(s) {', '.join(missing)}")
    wanted = {**REQUIRED_COLUMNS, **OPTIONAL_COLUMNS}
    for name, kind in columns.items():
        if name in wanted and kind != "null" and kind not in wanted[name]:
            problems.append(f"column '{name}' has type {kind}, expected {' or '.join(wanted[name])}")
    return problems


def unknown_columns(columns: dict[str, str]) -> list[str]:
    known = {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
    return sorted(c for c in columns if c not in known)


def validate_files(files: list[DumpFile]) -> None:
    """Raise one DumpError naming every bad file and its columns."""
    errors = [f"{f.path}: {p}" for f in files for p in column_problems(f.columns)]
    if errors:
        raise DumpError("the dump does not have the expected columns:\n  " + "\n  ".join(errors))


def subset_of(relative_path: str) -> str:
    """Subset (HF config) of a parquet file from its path relative to the dump root."""
    parts = [p for p in relative_path.replace("\\", "/").split("/") if p]
    return parts[0] if len(parts) > 1 else DEFAULT_SUBSET


def arrow_kind(arrow_type) -> str:
    import pyarrow as pa

    t = arrow_type
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", lambda _: False)(t):
        return "string"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "binary"
    if pa.types.is_struct(t):
        names = {t.field(i).name: t.field(i).type for i in range(t.num_fields)}
        b = names.get("bytes")
        if b is not None and (pa.types.is_binary(b) or pa.types.is_large_binary(b) or pa.types.is_null(b)):
            return "image"
    return f"other:{t}"


def spark_kind(spark_type) -> str:
    from pyspark.sql import types as T

    t = spark_type
    if isinstance(t, T.NullType):
        return "null"
    if isinstance(t, T.StringType):
        return "string"
    if isinstance(t, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "int"
    if isinstance(t, (T.FloatType, T.DoubleType)):
        return "float"
    if isinstance(t, T.BooleanType):
        return "bool"
    if isinstance(t, T.BinaryType):
        return "binary"
    if (isinstance(t, T.StructType) and "bytes" in t.fieldNames()
            and isinstance(t["bytes"].dataType, (T.BinaryType, T.NullType))):
        return "image"
    return f"other:{t.simpleString()}"


# The published dump's features (as its parquet files declare them for `datasets`), in file order.
DUMP_FEATURES: dict[str, dict[str, str]] = {
    "source": {"dtype": "string", "_type": "Value"},
    "id": {"dtype": "int64", "_type": "Value"},
    "ori_question": {"dtype": "string", "_type": "Value"},
    "original_answer": {"dtype": "string", "_type": "Value"},
    "question": {"dtype": "string", "_type": "Value"},
    "answer": {"dtype": "string", "_type": "Value"},
    "caption": {"dtype": "string", "_type": "Value"},
    "qwen3vl_235b_thinking_response": {"dtype": "string", "_type": "Value"},
    "pass_rate": {"dtype": "float64", "_type": "Value"},
    "is_consistent": {"dtype": "bool", "_type": "Value"},
    "consistency_analysis": {"dtype": "string", "_type": "Value"},
    "image": {"_type": "Image"},
}


def dump_arrow_schema(extra: dict[str, dict[str, str]] | None = None):
    """Arrow schema of the dump's parquet files, with the ``huggingface`` metadata ``datasets`` reads
    (so ``image`` loads as an ``Image`` feature). ``extra`` appends Value columns."""
    import json

    import pyarrow as pa

    arrow = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    features = {**DUMP_FEATURES, **(extra or {})}
    fields = [
        pa.field(name, pa.struct([pa.field("bytes", pa.binary()), pa.field("path", pa.string())]))
        if f["_type"] == "Image" else pa.field(name, arrow[f["dtype"]])
        for name, f in features.items()
    ]
    return pa.schema(fields, metadata={"huggingface": json.dumps({"info": {"features": features}})})
