"""Clean's benchmark decontamination step: rows still kept whose question overlaps an item of a configured
benchmark (``decontamination.benchmarks``) are rejected ``benchmark_overlap`` before any teacher is asked;
every match is appended to ``mfr.contamination`` with the run's id. The signals are the pure rules of
``mfr.dedup.contamination``; here they become joins: each row's n-gram hashes against the benchmarks'
(a broadcast join: benchmarks are small), short questions by their whole hash, and image matches among the
pairs that share a MinHash band of their questions (never all pairs)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import reduce

import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import Config
from mfr.dedup.contamination import (
    SIGNALS,
    DecontamRule,
    gram_keys,
    image_bits,
    image_match,
    item_text,
    numbers_agree,
    run_keys,
    text_match_counts,
    whole_key,
)
from mfr.dedup.spark import _image, _text, band_keys_udf
from mfr.dump.hub import download_dump, is_hub_uri
from mfr.dump.listing import DumpError, list_dump
from mfr.stages.collect import hub_cache, image_bytes
from mfr.stages.common import StageContext, persist
from mfr.stages.near_duplicates import apply_rejections
from mfr.storage import spark_path
from mfr.udfs import fingerprint_images
from mfr.vectorized import pandas_udf

# Image-signal candidates: question pairs sharing one of 32 bands of 4 MinHash values (a pair of Jaccard
# 0.5 becomes a candidate with probability 1 - (1 - 0.5^4)^32 = 0.87, of 0.6 with 0.99)
NUM_PERM, NUM_BANDS, SEED = 128, 32, 1
BENCHMARK_KEYS = ("name", "path", "question", "options", "image", "id", "subsets")


@dataclass(frozen=True)
class Benchmark:
    """One benchmark's items: where they are and which columns hold what (the dump's names by default)."""

    name: str
    path: str
    question: str = "question"
    options: str = "options"  # optional column: a list or a string appended to the question
    image: str = "image"  # optional column: {bytes} struct or binary
    id: str = "id"  # optional column: else the item is named <file>:<row>
    subsets: list[str] = field(default_factory=list)


def decontam_settings(cfg: Config) -> tuple[list[Benchmark], DecontamRule]:
    """``decontamination.*`` checked: a bad entry is one line naming its key, before any work."""
    s = cfg.settings.decontamination
    if s.ngram < 1:
        raise ValueError(f"decontamination.ngram must be at least 1, got {s.ngram}")
    if not 1 <= s.short_min_words <= s.ngram:
        raise ValueError(f"decontamination.short_min_words must be 1..ngram ({s.ngram}), got {s.short_min_words}")
    if not 0 <= s.image_bits <= 64:
        raise ValueError(f"decontamination.image_bits must be 0..64, got {s.image_bits}")
    if not 0.0 < s.question_jaccard <= 1.0:
        raise ValueError(f"decontamination.question_jaccard must be in (0, 1], got {s.question_jaccard}")
    benchmarks, names = [], set()
    for i, entry in enumerate(s.benchmarks):
        key = f"decontamination.benchmarks[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{key} must be a mapping with at least path, got {entry!r}")
        unknown = sorted(set(entry) - set(BENCHMARK_KEYS))
        if unknown:
            raise ValueError(f"{key}: unknown key(s) {', '.join(unknown)} (known: {', '.join(BENCHMARK_KEYS)})")
        path = entry.get("path")
        if not isinstance(path, str) or not path.strip():
            raise ValueError(f"{key}.path must be a folder, an object-store path or hf://datasets/<org>/<name>")
        name = str(entry.get("name") or path.rstrip("/").rsplit("/", 1)[-1])
        if name in names:
            raise ValueError(f"{key}: a second benchmark named {name!r}: give each a name")
        names.add(name)
        for col in ("question", "options", "image", "id"):
            if col in entry and not (isinstance(entry[col], str) and entry[col]):
                raise ValueError(f"{key}.{col} must be a column name, got {entry[col]!r}")
        subsets = entry.get("subsets") or []
        subsets = [subsets] if isinstance(subsets, str) else [str(x) for x in subsets]
        benchmarks.append(Benchmark(name, path, **{c: entry[c] for c in ("question", "options", "image", "id")
                                                   if c in entry}, subsets=subsets))
    rule = DecontamRule(s.ngram, s.short_min_words, s.image_bits, s.question_jaccard, s.text_needs_image)
    return benchmarks, rule


def _root(ctx: StageContext, bench: Benchmark) -> str:
    if not is_hub_uri(bench.path):
        return bench.path
    return download_dump(bench.path, hub_cache(ctx.cfg), subsets=bench.subsets or None, max_samples=None,
                         workers=ctx.cfg.settings.collection.download_workers, revision=None,
                         storage=ctx.lakehouse.storage)


def read_benchmark(spark: SparkSession, bench: Benchmark, root: str) -> DataFrame:
    """A benchmark's items: benchmark, item_id, question, text (question and options), image bytes. Errors
    (no such path, no parquet, no question column) are one line naming the benchmark."""
    try:
        files = list_dump(root, spark, bench.subsets or None)
    except DumpError as exc:
        raise ValueError(f"benchmark {bench.name}: {exc}") from None
    for f in files:
        if f.columns.get(bench.question) != "string":
            found = f"has type {f.columns[bench.question]}" if bench.question in f.columns else "is missing"
            raise ValueError(f"benchmark {bench.name}: {f.path}: question column {bench.question!r} {found} "
                             f"(columns: {', '.join(sorted(f.columns))}); set its 'question' key")
    frames = []
    for kinds in {tuple(sorted(f.columns.items())) for f in files}:
        cols = dict(kinds)
        df = spark.read.parquet(*[spark_path(f.path) for f in files if tuple(sorted(f.columns.items())) == kinds])
        options: Column = F.lit(None).cast("string")
        if bench.options in cols:
            options = (F.concat_ws(" ", F.col(bench.options).cast("array<string>"))
                       if cols[bench.options].startswith("other:array") else F.col(bench.options).cast("string"))
        item_id = (F.col(bench.id).cast("string") if bench.id in cols
                   else F.concat_ws(":", F.element_at(F.split("_metadata.file_path", "/"), -1),
                                    F.col("_metadata.row_index").cast("string")))
        frames.append(df.select(F.lit(bench.name).alias("benchmark"), item_id.alias("item_id"),
                                F.col(bench.question).alias("question"), options.alias("_options"),
                                image_bytes(cols, bench.image).alias("bytes")))
    text = _item_text_udf("question", "_options").alias("text")
    return reduce(DataFrame.unionByName, frames).select("benchmark", "item_id", "question", text, "bytes")


@pandas_udf(T.StringType())
def _item_text_udf(questions: pd.Series, options: pd.Series) -> pd.Series:
    return pd.Series([item_text(_text(q), _text(o)) for q, o in zip(questions, options)])


def load_benchmarks(ctx: StageContext, benchmarks: list[Benchmark]) -> DataFrame:
    """Every configured benchmark's items with their images' fingerprints (computed once, staged);
    an image that does not decode is one line naming the benchmark and the item, before any write."""
    items = reduce(DataFrame.unionByName, [read_benchmark(ctx.spark, b, _root(ctx, b)) for b in benchmarks])
    items = items.select("benchmark", "item_id", "question", "text", F.col("bytes").isNotNull().alias("has_image"),
                         fingerprint_images("bytes").alias("p")).select("*", "p.*").drop("p")
    items = persist(ctx, items, "benchmark-items")
    bad = items.where(F.col("has_image") & F.col("phash").isNull()).select("benchmark", "item_id").limit(1).collect()
    if bad:
        raise ValueError(f"benchmark {bad[0]['benchmark']}: the image of item {bad[0]['item_id']} does not decode "
                         "(set its 'image' key to the right column, or fix the file)")
    return items


def _gram_udf(n: int):
    @pandas_udf(T.ArrayType(T.LongType()))
    def grams(texts: pd.Series) -> pd.Series:
        return pd.Series([gram_keys(_text(t), n) for t in texts])

    return grams


MATCH_TYPE = T.StructType([T.StructField("match", T.BooleanType()), T.StructField("jaccard", T.DoubleType()),
                           T.StructField("image_bits", T.IntegerType())])


def _text_udf(rule: DecontamRule, numbers: bool):
    """A text match decided (the images near where both have one; with ``numbers``, the item's numbers stated):
    match and the image bits compared."""

    @pandas_udf(MATCH_TYPE)
    def decide(q: pd.Series, p: pd.Series, d: pd.Series, iq: pd.Series, it: pd.Series, ip: pd.Series,
               idh: pd.Series) -> pd.DataFrame:
        out = []
        for a, b, c, x, t, y, z in zip(q, p, d, iq, it, ip, idh):
            row, item = _image(b, c), _image(y, z)
            bits = image_bits(row, item)
            ok = text_match_counts(item is not None, row is not None, bits, rule)
            out.append((ok and (not numbers or numbers_agree(_text(a), _text(x), _text(t))), None, bits))
        return pd.DataFrame(out, columns=["match", "jaccard", "image_bits"]).astype({"image_bits": "Int64"})

    return decide


def _whole_udf(rule: DecontamRule):
    @pandas_udf(T.LongType())
    def whole(texts: pd.Series) -> pd.Series:
        return pd.Series([whole_key(_text(t), rule.ngram, rule.short_min_words) for t in texts], dtype="Int64")

    return whole


def _runs_udf(rule: DecontamRule):
    @pandas_udf(T.ArrayType(T.LongType()))
    def runs(texts: pd.Series) -> pd.Series:
        return pd.Series([run_keys(_text(t), rule.ngram, rule.short_min_words) for t in texts])

    return runs


def _image_udf(rule: DecontamRule):
    @pandas_udf(MATCH_TYPE)
    def decide(q: pd.Series, p: pd.Series, d: pd.Series, iq: pd.Series, it: pd.Series, ip: pd.Series,
               idh: pd.Series) -> pd.DataFrame:  # the item's text (with options) is not compared here
        out = [image_match(_text(a), _image(b, c), _text(x), _image(y, z), rule)
               for a, b, c, x, y, z in zip(q, p, d, iq, ip, idh)]
        return pd.DataFrame(out, columns=["match", "jaccard", "image_bits"]).astype({"image_bits": "Int64"})

    return decide


def benchmark_matches(rows: DataFrame, items: DataFrame, rule: DecontamRule) -> DataFrame:
    """Every (row, item) match: sample_key, benchmark, item_id, signal, jaccard, image_bits.
    ``rows``: sample_key, question, phash, dhash; ``items``: benchmark, item_id, question, text, phash, dhash."""
    ids = ["benchmark", "item_id"]
    row_grams = rows.select("sample_key", F.explode(_gram_udf(rule.ngram)("question")).alias("g"))
    item_grams = items.select(*ids, F.explode(_gram_udf(rule.ngram)("text")).alias("g"))
    i_cols: list[Column | str] = [F.col("question").alias("i_question"), F.col("text").alias("i_text"),
                                  F.col("phash").alias("i_phash"), F.col("dhash").alias("i_dhash")]
    pair = ["question", "phash", "dhash", "i_question", "i_text", "i_phash", "i_dhash"]
    rows_side = rows.select("sample_key", "question", "phash", "dhash")

    def decided(pairs: DataFrame, signal: str, udf, jaccard: Column | None = None) -> DataFrame:
        """The candidate (row, item) pairs ``udf`` calls a match, as matches of ``signal``."""
        with_text = pairs.join(rows_side, "sample_key").join(items.select(*ids, *i_cols), ids)
        return (with_text.select("sample_key", *ids, udf(*pair).alias("m")).where("m.match")
                .select("sample_key", *ids, F.lit(signal).alias("signal"),
                        (F.col("m.jaccard") if jaccard is None else jaccard).alias("jaccard"),
                        F.col("m.image_bits").cast("int").alias("image_bits")))

    shared = row_grams.join(F.broadcast(item_grams), "g").select("sample_key", *ids).distinct()
    ngram = decided(shared, "ngram", _text_udf(rule, numbers=True))
    r = rows.select("sample_key", _whole_udf(rule)("question").alias("w")).where(F.col("w").isNotNull())
    i = items.select(*ids, F.explode(_runs_udf(rule)("text")).alias("w")).distinct()
    whole = decided(r.join(F.broadcast(i), "w").select("sample_key", *ids).distinct(), "whole",
                    _text_udf(rule, numbers=False), F.lit(1.0))
    bands = band_keys_udf(NUM_PERM, NUM_BANDS, SEED)
    keys = F.posexplode(bands(F.col("question"))).alias("band", "key")
    rk = rows.where(F.col("phash").isNotNull()).select("sample_key", keys)
    ik = items.where(F.col("phash").isNotNull()).select(*ids, keys)
    image = decided(rk.join(F.broadcast(ik), ["band", "key"]).select("sample_key", *ids).distinct(), "image",
                    _image_udf(rule))
    return ngram.unionByName(whole).unionByName(image)


def first_matches(matches: DataFrame) -> DataFrame:
    """One match per row, the one its rejection names: by signal (n-gram, whole question, image), then
    benchmark and item id; sample_key and detail (JSON: benchmark, item_id, signal, jaccard, image_bits)."""
    order = F.array_position(F.array(*[F.lit(s) for s in SIGNALS]), F.col("signal"))
    firsts = matches.groupBy("sample_key").agg(
        F.min(F.struct(order.alias("o"), "benchmark", "item_id", "signal", "jaccard", "image_bits")).alias("m"))
    detail = F.to_json(F.struct(*[F.col(f"m.{c}").alias(c) for c in ("benchmark", "item_id", "signal", "jaccard",
                                                                      "image_bits")]))
    return firsts.select("sample_key", detail.alias("detail"))


@dataclass
class DecontamResult:
    rows: DataFrame  # every row of the input, overlapping ones now rejected
    matches: DataFrame  # sample_key, source, benchmark, item_id, signal, jaccard, image_bits
    metrics: dict[str, float]


def mark_contaminated(ctx: StageContext, out: DataFrame, prints: DataFrame | None) -> DecontamResult:
    """``out``: clean's rows (``reject_reason`` null where kept); ``prints``: image_id, phash, dhash of the
    kept rows' images (None: the text signals only)."""
    benchmarks, rule = decontam_settings(ctx.cfg)
    items = load_benchmarks(ctx, benchmarks)
    kept = out.where(F.col("reject_reason").isNull())
    if prints is None:
        rows = kept.select("sample_key", "source", "question", F.lit(None).cast("long").alias("phash"),
                           F.lit(None).cast("long").alias("dhash"))
    else:
        rows = kept.join(prints.select("image_id", "phash", "dhash"), "image_id", "left").select(
            "sample_key", "source", "question", "phash", "dhash")
    matches = persist(ctx, benchmark_matches(rows, items, rule).join(rows.select("sample_key", "source"), "sample_key"),
                      "benchmark-matches")
    marked = apply_rejections(out, first_matches(matches), "benchmark_overlap")
    counts = matches.agg(F.count("*").alias("matches"), F.countDistinct("sample_key").alias("rejected"),
                         *[F.count(F.when(F.col("signal") == s, 1)).alias(f"matches.{s}") for s in SIGNALS]).collect()[0]
    metrics = {"decontam.items": float(items.count()), **{f"decontam.{k}": float(v) for k, v in counts.asDict().items()}}
    return DecontamResult(marked, matches, metrics)

