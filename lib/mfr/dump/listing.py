"""Find a dump's parquet files and read their schemas, before anything is written.

Local folders are listed with the OS and their footers read with pyarrow (fast, no Spark job). Object
store URIs (s3://, abfss://, gs://, dbfs:/ …) are listed through Hadoop's FileSystem in the session's
JVM, so whatever credentials the cluster has apply; their schemas are read by Spark.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mfr.dump.layout import DumpError, DumpFile, arrow_kind, spark_kind, subset_of

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession


def is_local(uri: str) -> bool:
    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def _local_path(uri: str) -> Path:
    return Path(urlparse(uri).path if uri.startswith("file:") else uri)


def _hidden(rel: str) -> bool:
    return any(part.startswith((".", "_")) for part in rel.split("/"))


def list_local(root: Path) -> list[tuple[str, str]]:
    """(relative path, absolute path) of every parquet file under ``root``, hidden folders skipped."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "_")))
        for name in sorted(filenames):
            if name.endswith(".parquet"):
                full = Path(dirpath) / name
                out.append((full.relative_to(root).as_posix(), str(full.resolve())))
    return out


def list_remote(spark: SparkSession, root: str) -> list[tuple[str, str]]:
    return [(rel, full) for rel, full, _, _ in list_remote_stat(spark, root)]


def list_remote_stat(spark: SparkSession, root: str) -> list[tuple[str, str, int | None, int | None]]:
    """Parquet files under an object-store (or any Hadoop) URI, listed by Spark itself: the ``binaryFile``
    source lists recursively through the cluster's filesystem settings on classic Spark and Spark Connect
    alike, and reads no file content when only ``path`` is selected."""
    from pyspark.sql import functions as F

    try:
        found = (
            spark.read.format("binaryFile").option("pathGlobFilter", "*.parquet").option("recursiveFileLookup", "true")
            .load(root).select("path", "length", F.col("modificationTime").cast("long").alias("modified")).collect()
        )
    except Exception as exc:  # Spark's AnalysisException differs between classic and Connect
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        if "PATH_NOT_FOUND" in str(exc) or "does not exist" in str(exc):
            raise DumpError(f"dump path does not exist: {root}") from None
        raise DumpError(f"cannot list {root}: {first}") from exc
    anchor = urlparse(root).path.rstrip("/")  # the root's path part, whatever scheme and authority Spark prints
    out = []
    for row in found:
        full = row["path"]
        at = urlparse(full).path
        rel = at[len(anchor):].lstrip("/") if at.startswith(anchor) else at.rsplit("/", 1)[-1]
        if not _hidden(rel):
            out.append((rel, full, row["length"], row["modified"]))
    return sorted(out)


def _local_schema(path: str) -> tuple[dict[str, str], int]:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
    except Exception as exc:
        raise DumpError(f"{path}: not a readable parquet file ({exc})") from exc
    schema = meta.schema_arrow
    return {f.name: arrow_kind(f.type) for f in schema}, meta.metadata.num_rows


def _spark_schema(spark: SparkSession, path: str) -> dict[str, str]:
    try:
        schema = spark.read.parquet(path).schema
    except Exception as exc:
        raise DumpError(f"{path}: not a readable parquet file ({exc})") from exc
    return {f.name: spark_kind(f.dataType) for f in schema.fields}


def list_dump(source: str, spark: SparkSession | None = None, subsets: list[str] | None = None) -> list[DumpFile]:
    """Every parquet file of the chosen subsets, with its column kinds. Errors name the path."""
    if is_local(source):
        root = _local_path(source)
        if not root.exists():
            raise DumpError(f"dump path does not exist: {root}")
        if not root.is_dir():
            raise DumpError(f"dump path is not a folder: {root}")
        found = list_local(root)
        stats: dict[str, tuple[int | None, int | None]] = {}
    else:
        if spark is None:
            raise DumpError(f"reading {source} needs a Spark session")
        listed = list_remote_stat(spark, source)
        found = [(rel, full) for rel, full, _, _ in listed]
        stats = {full: (size, modified) for _, full, size, modified in listed}
    if not found:
        raise DumpError(f"no parquet files under {source} (expected <subset>/*.parquet)")
    by_subset: dict[str, list[tuple[str, str]]] = {}
    for rel, full in found:
        by_subset.setdefault(subset_of(rel), []).append((rel, full))
    if subsets:
        missing = [s for s in subsets if s not in by_subset]
        if missing:
            raise DumpError(
                f"subset(s) {', '.join(missing)} not found under {source}; available: {', '.join(sorted(by_subset))}"
            )
        by_subset = {s: by_subset[s] for s in subsets}
    files = []
    for subset, entries in sorted(by_subset.items()):
        for _rel, full in entries:
            if is_local(full):
                columns, rows = _local_schema(full)
                st = os.stat(full)
                files.append(DumpFile(subset, full, columns, rows, st.st_size, st.st_mtime_ns))
            elif spark is None:
                raise DumpError(f"{full}: reading an object-store dump needs a Spark session")
            else:
                size, modified = stats.get(full, (None, None))
                files.append(DumpFile(subset, full, _spark_schema(spark, full), None, size, modified))
    return files
