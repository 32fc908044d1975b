"""Collect: rows/s on a 20k-row synthetic dump, against the seed's way (datasets) side by side.

The run collects into a lakehouse whose tables exist (a new schema's tables are created first, timed apart
as ``collect.schema_s``): a 2.3M-row job creates them once; timing them per 20k rows would not be its rate.

With ``--marginal-rows N`` (``make bench`` passes 1 000 000) the same process then collects N rows, ours and
the seed's way again: ``collect.speedup_vs_seed.<N>`` is the whole-run ratio at a size nearer the real job
(2.3M rows), where the ~10 s of Spark jobs and Delta commits every run spends weigh little, and
``collect.marginal.*`` the rates per added row. With ``--real-copies N`` (``make bench`` passes 1 000) it
collects N copies of the real sample (110 rows each: JPEGs, traces and captions as the dump has them) both
ways: ``collect.real.speedup_vs_seed`` on rows shaped like the real job's.

``collect.commit_floor_s`` is what any collect run spends before its first row, measured on this machine: the
Delta commits it cannot do without (the rows' version, the images' MERGE, the run log's start and finish)
and one count of the written version, each on a one-row table, warm. ``collect.speedup_ceiling_vs_seed`` is
seed / (floor + seed): the ratio a collect would reach over these rows if each row cost it no more than it
costs the seed, the bound the commit floor alone sets on a dump this small. ``collect.bare_copy_speedup_vs_seed``
is the same dump copied by Spark into one Delta table and nothing else (no keys, images table, lineage,
quarantine or accounting), against the seed's way, side by side (median of three pairs): what Spark and Delta
reach at this size before collect does any of its work.
"""

from __future__ import annotations

import shutil
import statistics
import time
from pathlib import Path

from pyspark.sql import functions as F

from bench.select_bench import REAL
from mfr.config import Config
from mfr.lakehouse import Lakehouse
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
    elif rows % _GENERATED_MAX:
        raise ValueError(f"a bench dump above {_GENERATED_MAX} rows is made of whole copies: use a multiple of {_GENERATED_MAX}")
    else:
        _copies(_dump(root, _GENERATED_MAX), out, rows // _GENERATED_MAX)
    return out


def _real_dump(root: Path, copies: int) -> Path:
    """``copies`` copies of the real sample (its JPEGs, traces and captions as the dump has them), a hundred
    copies of a subset's file to one file: rows shaped like the real job's, for a rate to set beside the
    synthetic one."""
    out = root / f"real-sample-x{copies}"
    if not (out / ".mfr-sample").exists():
        _copies(REAL, out, copies, per_file=100)
    return out


def _copy(table, k: int):
    """Copy ``k`` of a dump table: every id + k × 10¹², every image with a trailer naming k appended (its header,
    and so width, height and format, stays; its sha256 changes). Copy 0 is the table itself."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not k:
        return table
    ids = table.column("id")
    table = table.set_column(table.schema.get_field_index("id"), "id", pc.add(ids, pa.scalar(k * 10**12, ids.type)))
    if "image" in table.column_names and pa.types.is_struct(table.schema.field("image").type):
        image = table.column("image").combine_chunks()
        trailer = pa.scalar(f"copy-{k}".encode(), pa.binary())
        data = pc.binary_join_element_wise(image.field("bytes"), trailer, pa.scalar(b"", pa.binary()))
        table = table.set_column(table.schema.get_field_index("image"), "image",
                                 pa.StructArray.from_arrays([data, image.field("path")], ["bytes", "path"],
                                                            mask=image.is_null()))
    return table


def _copies(base: Path, out: Path, copies: int, per_file: int = 1) -> None:
    """``copies`` copies of the dump ``base`` (``_copy``), so no key or image of one copy meets another's;
    ``per_file`` copies of a base file share one output file (ten rows copied a thousand times would
    otherwise be a thousand tiny files, which no real dump has)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(out, ignore_errors=True)
    for f in sorted(base.rglob("*.parquet")):
        original = pq.read_table(f)  # read once, written once per group of copies
        for first in range(0, copies, per_file):
            table = pa.concat_tables([_copy(original, k) for k in range(first, min(copies, first + per_file))])
            dest = out / f.parent.relative_to(base) / f"copy{first:04d}-{f.name}"
            dest.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, dest)
    (out / ".mfr-sample").write_text(f'{{"copies": {copies}, "of": "{base.name}"}}\n')


def _source_image_bytes(dump: Path) -> int:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for p in sorted(dump.rglob("*.parquet")):
        col = pq.read_table(p, columns=["image"]).column("image")
        total += int(pc.sum(pc.binary_length(pc.struct_field(col, "bytes"))).as_py() or 0)
    return total


def _seed_way(dump: Path, workdir: Path) -> float:
    """Seconds of the seed's collection: load each subset with datasets, concatenate, save to parquet (in a
    folder of its own, removed after: its copy and cache are read by nothing, gigabytes at 1M rows)."""
    import datasets

    out = workdir / "seed-collect"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    parts = [
        datasets.load_dataset("parquet", data_dir=str(d), split="train", cache_dir=str(out / "hf-cache"))
        for d in sorted(p for p in dump.iterdir() if p.is_dir())
    ]
    datasets.concatenate_datasets(parts).to_parquet(str(out / "seed.parquet"))
    seconds = time.perf_counter() - start
    shutil.rmtree(out, ignore_errors=True)
    return seconds


def _both_ways(spark, make_cfg, workdir: Path, dump: Path) -> tuple[Config, RunResult, float, float, float]:
    """(config, collect's result, schema seconds, collect seconds, the seed's seconds) on ``dump``."""
    cfg = make_cfg(f"collection.source={dump}")
    # The new schema's tables are created apart (once per lakehouse, not per run, and nothing the seed does)
    start = time.perf_counter()
    Lakehouse(spark, cfg).ensure_schema()
    schema_s = time.perf_counter() - start
    start = time.perf_counter()
    result = run_stage(spark, cfg, "collect")
    ours = time.perf_counter() - start
    return cfg, result, schema_s, ours, _seed_way(dump, workdir)


def run(spark, make_cfg, workdir: Path, rows: int = 20000, marginal_rows: int | None = None,
        real_copies: int | None = None) -> dict[str, float]:
    """``marginal_rows`` (``--marginal-rows``) collects a second, larger dump in the same process: the rate
    per added row, ours and the seed's, is what a job much larger than its fixed costs tends to.
    ``real_copies`` (``--real-copies``) collects that many copies of the real sample, both ways
    (``collect.real.*``): JPEGs and texts of the real dump's sizes, where the synthetic rows are small PNGs."""
    # Warm both ways on a small dump first (ours: JIT, Delta and Derby classes; the seed's: importing
    # datasets and its first load): a real job runs warm.
    warm = _dump(workdir, 300)
    run_stage(spark, make_cfg(f"collection.source={warm}"), "collect")
    _seed_way(warm, workdir)
    dump = _dump(workdir, rows)
    cfg, result, schema_s, ours, seed = _both_ways(spark, make_cfg, workdir, dump)
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
    floor = _commit_floor(spark, make_cfg())
    figures["collect.commit_floor_s"] = floor
    figures["collect.speedup_ceiling_vs_seed"] = seed / (floor + seed)
    bare_s, bare_ratio = _bare_copy(spark, make_cfg(), workdir, dump)
    figures["collect.bare_copy_s"] = bare_s
    figures["collect.bare_copy_speedup_vs_seed"] = bare_ratio
    if marginal_rows and marginal_rows > rows:
        big_cfg, _, _, ours_big, seed_big = _both_ways(spark, make_cfg, workdir, _dump(workdir, marginal_rows))
        _drop(spark, big_cfg)
        added = marginal_rows - rows
        figures.update({
            "collect.marginal.rows": float(marginal_rows),
            "collect.marginal.rows_per_s": added / (ours_big - ours),
            "collect.marginal.seed_rows_per_s": added / (seed_big - seed),
            "collect.marginal.speedup_vs_seed": (seed_big - seed) / (ours_big - ours),
            f"collect.rows_per_s.{marginal_rows}": marginal_rows / ours_big,
            f"collect.speedup_vs_seed.{marginal_rows}": seed_big / ours_big,
        })
    if real_copies:
        if not REAL.is_dir():
            raise FileNotFoundError(f"--real-copies copies the real sample, which is not at {REAL}")
        real_cfg, real, _, ours_real, seed_real = _both_ways(spark, make_cfg, workdir, _real_dump(workdir, real_copies))
        _drop(spark, real_cfg)
        figures.update({
            "collect.real.rows": float(real.rows_in),
            "collect.real.rows_per_s": real.rows_in / ours_real,
            "collect.real.seed_rows_per_s": real.rows_in / seed_real,
            "collect.real.speedup_vs_seed": seed_real / ours_real,
        })
    return figures


def _commit_floor(spark, cfg: Config, rounds: int = 5) -> float:
    """Median seconds of the commits and the count every collect run makes, on one-row tables (warm)."""
    lh = Lakehouse(spark, cfg)
    lh.create_schema()
    rows, images = lh.name("floor_rows"), lh.name("floor_images")
    for table in (rows, images):
        spark.sql(f"CREATE TABLE IF NOT EXISTS {table} (k string, v long) USING delta")
    one = spark.createDataFrame([("k", 1)], "k string, v long")
    one.createOrReplaceTempView("floor_source")

    def run_once() -> float:
        start = time.perf_counter()
        one.write.format("delta").mode("append").saveAsTable(rows)   # the run log's start
        spark.sql(f"MERGE INTO {images} t USING floor_source s ON t.k = s.k WHEN NOT MATCHED THEN INSERT *").collect()
        one.write.format("delta").mode("append").saveAsTable(rows)   # the rows' version
        spark.table(rows).groupBy("k").count().collect()              # accounting over the written version
        one.write.format("delta").mode("append").saveAsTable(rows)   # the run log's finish
        return time.perf_counter() - start

    run_once()  # warm
    times = [run_once() for _ in range(rounds)]
    _drop(spark, cfg)
    return statistics.median(times)


def _bare_copy(spark, cfg: Config, workdir: Path, dump: Path, rounds: int = 3) -> tuple[float, float]:
    """(median seconds, median ratio to the seed's way) of copying ``dump`` into one Delta table and nothing
    else, each round beside a run of the seed's way (warm: the dump was just collected)."""
    lh = Lakehouse(spark, cfg)
    lh.create_schema()
    folders = [str(p) for p in sorted(dump.iterdir()) if p.is_dir()]
    pairs = []
    for k in range(rounds):
        start = time.perf_counter()
        spark.read.parquet(*folders).write.format("delta").saveAsTable(lh.name(f"bare_copy_{k}"))
        ours = time.perf_counter() - start
        pairs.append((ours, _seed_way(dump, workdir) / ours))
    _drop(spark, cfg)
    return statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)


def _drop(spark, cfg: Config) -> None:
    """A large run's schema: gigabytes of tables of no further use."""
    spark.sql(f"DROP SCHEMA IF EXISTS {Lakehouse(spark, cfg).namespace} CASCADE")
