"""Collect: rows/s on a 20k-row synthetic dump, against the seed's way (datasets) side by side.

The run collects into a lakehouse whose tables exist (a new schema's tables are created first, timed apart
as ``collect.schema_s``): a 2.3M-row job creates them once; timing them per 20k rows would not be its rate.

With ``--marginal-rows N`` (``make bench`` passes 1 000 000) the same process then collects N rows, ours and
the seed's way again: ``collect.speedup_vs_seed.<N>`` is the whole-run ratio at a size nearer the real job
(2.3M rows), where the ~10 s of Spark jobs and Delta commits every run spends weigh little, and
``collect.marginal.*`` the rates per added row.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.config import Config
from mfr.runner import RunResult, run_stage
from mfr.sample.synthetic import write_sample


# Dumps larger than this are copies of a dump of this size (generating 1M rows in one go would hold them
# all in memory), each copy with its own ids and its own images, so nothing collapses in the key checks or
# in the content-addressed images table.
_GENERATED_MAX = 100_000


def _dump(root: Path, rows: int) -> Path:
    out = root / f"bench-dump-{rows}"
    if (out / ".mfr-sample").exists():
        return out
    if rows <= _GENERATED_MAX:
        write_sample(out, rows)
    else:
        _copies(_dump(root, _GENERATED_MAX), out, rows)
    return out


def _copies(base: Path, out: Path, rows: int) -> None:
    """``rows`` rows as copies of ``base``: copy k adds k × 10¹² to every id and appends a trailer naming k
    to every image (the header, and so width, height and format, stays; the sha256 changes)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    per_copy = _GENERATED_MAX
    if rows % per_copy:
        raise ValueError(f"a bench dump above {per_copy} rows is made of whole copies: use a multiple of {per_copy}")
    shutil.rmtree(out, ignore_errors=True)
    for f in sorted(base.rglob("*.parquet")):
        original = pq.read_table(f)  # read once, written once per copy
        for k in range(rows // per_copy):
            table = original
            if k:
                ids = table.column("id")
                table = table.set_column(table.schema.get_field_index("id"), "id",
                                         pc.add(ids, pa.scalar(k * 10**12, ids.type)))
                if "image" in table.column_names and pa.types.is_struct(table.schema.field("image").type):
                    image = table.column("image").combine_chunks()
                    trailer = pa.scalar(f"copy-{k}".encode(), pa.binary())
                    data = pc.binary_join_element_wise(image.field("bytes"), trailer, pa.scalar(b"", pa.binary()))
                    table = table.set_column(table.schema.get_field_index("image"), "image",
                                             pa.StructArray.from_arrays([data, image.field("path")], ["bytes", "path"],
                                                                        mask=image.is_null()))
            dest = out / f.parent.relative_to(base) / f"copy{k:03d}-{f.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, dest)
    (out / ".mfr-sample").write_text(f'{{"rows": {rows}, "copies_of": "{base.name}"}}\n')


def _source_image_bytes(dump: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for p in sorted(dump.rglob("*.parquet")):
        col = pq.read_table(p, columns=["image"]).column("image")
        total += int(pc.sum(pc.binary_length(pc.struct_field(col, "bytes"))).as_py() or 0)
    return total


def _seed_way(dump: Path, out: Path) -> float:
    """The seed's collection: load each subset with datasets, concatenate, save to parquet."""
    import datasets

    start = time.perf_counter()
    parts = [
        datasets.load_dataset("parquet", data_dir=str(d), split="train", cache_dir=str(out / "hf-cache"))
        for d in sorted(p for p in dump.iterdir() if p.is_dir())
    ]
    datasets.concatenate_datasets(parts).to_parquet(str(out / "seed.parquet"))
    return time.perf_counter() - start


def _both_ways(spark, make_cfg, workdir: Path, rows: int) -> tuple[Path, Config, RunResult, float, float, float]:
    """(dump, config, collect's result, schema seconds, collect seconds, the seed's seconds) on ``rows`` rows."""
    dump = _dump(workdir, rows)
    cfg = make_cfg(f"collection.source={dump}")
    # The new schema's tables are created apart (once per lakehouse, not per run, and nothing the seed does)
    start = time.perf_counter()
    Lakehouse(spark, cfg).ensure_schema()
    schema_s = time.perf_counter() - start
    start = time.perf_counter()
    result = run_stage(spark, cfg, "collect")
    ours = time.perf_counter() - start
    seed_dir = workdir / "seed-collect"
    shutil.rmtree(seed_dir, ignore_errors=True)
    seed = _seed_way(dump, seed_dir)
    shutil.rmtree(seed_dir, ignore_errors=True)  # its copy and cache: read by nothing, gigabytes at 1M rows
    return dump, cfg, result, schema_s, ours, seed


def run(spark, make_cfg, workdir: Path, rows: int = 20000, marginal_rows: int | None = None) -> dict[str, float]:
    """``marginal_rows`` (``--marginal-rows``) collects a second, larger dump in the same process: the rate
    per added row, ours and the seed's, is what a job much larger than its fixed costs tends to."""
    # Warm the JVM (JIT, Delta and Derby classes) on a small dump first: a real job runs warm.
    run_stage(spark, make_cfg(f"collection.source={_dump(workdir, 300)}"), "collect")
    dump, cfg, result, schema_s, ours, seed = _both_ways(spark, make_cfg, workdir, rows)
    lh = Lakehouse(spark, cfg)
    images_dir = Path(lh.spark.sql(f"DESCRIBE DETAIL {lh.name('images')}").collect()[0]["location"].replace("file:", ""))
    written = sum(p.stat().st_size for p in images_dir.glob("*.parquet"))
    stored = lh.read("images").agg(F.sum("num_bytes")).collect()[0][0]
    source_bytes = _source_image_bytes(dump)
    figures = {
        "collect.rows": float(result.rows_in),
        "collect.rows_per_s": result.rows_in / ours,
        "collect.seed_rows_per_s": result.rows_in / seed,
        "collect.speedup_vs_seed": seed / ours,
        "collect.schema_s": schema_s,
        "collect.image_bytes_ratio": written / source_bytes,
        "collect.image_payload_ratio": stored / source_bytes,
    }
    if marginal_rows and marginal_rows > rows:
        _, big_cfg, _, _, ours_big, seed_big = _both_ways(spark, make_cfg, workdir, marginal_rows)
        # gigabytes at this size, of no further use: the schema's tables
        spark.sql(f"DROP SCHEMA IF EXISTS {Lakehouse(spark, big_cfg).namespace} CASCADE")
        added = marginal_rows - rows
        figures.update({
            "collect.marginal.rows": float(marginal_rows),
            "collect.marginal.rows_per_s": added / (ours_big - ours),
            "collect.marginal.seed_rows_per_s": added / (seed_big - seed),
            "collect.marginal.speedup_vs_seed": (seed_big - seed) / (ours_big - ours),
            f"collect.rows_per_s.{marginal_rows}": marginal_rows / ours_big,
            f"collect.speedup_vs_seed.{marginal_rows}": seed_big / ours_big,
        })
    return figures
