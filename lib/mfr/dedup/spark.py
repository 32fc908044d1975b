"""Near-duplicate samples on Spark, as ``DataFrame -> DataFrame`` steps around the pure rules of
``mfr.dedup``: band keys per question (a pandas UDF over Arrow batches), candidate pairs by a join on band
keys (never all pairs, nothing collected on the driver), each candidate decided by ``near_duplicate``,
clusters by connected components, and one row kept per cluster.

A band key shared by very many rows (a template question asked of thousands of figures) would make a
quadratic number of candidates; such a bucket pairs each row only with its neighbours in two orders (by
pHash, by dHash; by question text for rows without an image), which keeps near copies together because
near copies sort near each other, at a linear cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.dedup.minhash import bands, jaccard, near_key_text, shingles, signatures
from mfr.dedup.near import NearRule, Sample, compared_bits, near_duplicate
from mfr.vectorized import pandas_udf

Persist = Callable[[DataFrame, str], DataFrame]  # computes a frame once and cuts its lineage (a run's staging)

PAIR_TYPE = T.StructType([
    T.StructField("near", T.BooleanType()),
    T.StructField("jaccard", T.DoubleType()),
    T.StructField("image_bits", T.IntegerType()),
    T.StructField("why", T.StringType()),
])


@dataclass(frozen=True)
class NearDupSettings:
    """``cleaning.near_dup.*`` as the steps read them."""

    rule: NearRule = NearRule()
    num_perm: int = 128
    num_bands: int = 32
    seed: int = 1
    max_bucket: int = 200  # rows sharing one band key paired all with all up to this many
    neighbours: int = 8  # a larger bucket: each row paired with this many next rows in each order
    max_rounds: int = 40  # connected components: label rounds before giving up (a chain this long)


def band_keys_udf(num_perm: int, num_bands: int, seed: int) -> Callable[[Column], Column]:
    """A pandas UDF: a question's LSH band keys (``array<long>``; empty for an empty question)."""

    @pandas_udf(T.ArrayType(T.LongType()))
    def band_keys(questions: pd.Series) -> pd.Series:
        texts = [q if isinstance(q, str) else "" for q in questions]
        sigs = signatures(texts, num_perm=num_perm, seed=seed)
        return pd.Series([bands(s, num_bands) if shingles(t) else [] for s, t in zip(sigs, texts)], dtype="object")

    return band_keys


@pandas_udf(T.LongType())
def question_hash(questions: pd.Series) -> pd.Series:
    """A 64-bit hash of each normalised question (``near_key_text``): equal for the same question re-spaced,
    re-cased or re-tagged."""
    return pd.Series([int.from_bytes(hashlib.blake2b(near_key_text(q if isinstance(q, str) else None).encode(), digest_size=8)
                                     .digest(), "big", signed=True) for q in questions], dtype="int64")


def with_templates(rows: DataFrame, min_images: int) -> DataFrame:
    """``rows`` (sample_key, question, phash, …) with ``template``: whether its normalised question is asked of
    ``min_images`` rows with an image or more (one window over a hash of the question, no pairs)."""
    asked = F.count(F.col("phash")).over(Window.partitionBy("_question_hash"))  # a column: no UDF in a window spec
    return (rows.withColumn("_question_hash", question_hash(F.col("question")))
            .withColumn("template", F.col("phash").isNotNull() & (asked >= F.lit(min_images))).drop("_question_hash"))


def _decide_pairs_udf(rule: NearRule) -> Callable[..., Column]:
    """A pandas UDF deciding each candidate pair by ``rule`` from both rows' question, answer, hashes and
    template flag."""

    @pandas_udf(PAIR_TYPE)
    def decide(qa: pd.Series, aa: pd.Series, pa: pd.Series, da: pd.Series, ta: pd.Series,
               qb: pd.Series, ab: pd.Series, pb: pd.Series, db: pd.Series, tb: pd.Series) -> pd.DataFrame:
        out = []
        for i in range(len(qa)):
            a = Sample(_text(qa.iat[i]), _text(aa.iat[i]), _image(pa.iat[i], da.iat[i]), bool(ta.iat[i]))
            b = Sample(_text(qb.iat[i]), _text(ab.iat[i]), _image(pb.iat[i], db.iat[i]), bool(tb.iat[i]))
            similarity = jaccard(shingles(a.question or ""), shingles(b.question or ""))
            near, why = near_duplicate(a, b, similarity, rule)
            out.append((near, similarity, compared_bits(a, b), why))
        frame = pd.DataFrame(out, columns=[f.name for f in PAIR_TYPE.fields])
        frame["image_bits"] = frame["image_bits"].astype("Int32")
        return frame

    return decide


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _image(phash: Any, dhash: Any) -> tuple[int, int] | None:
    if phash is None or dhash is None or bool(pd.isna(phash)) or bool(pd.isna(dhash)):
        return None
    return int(phash), int(dhash)


def candidate_pairs(rows: DataFrame, settings: NearDupSettings) -> DataFrame:
    """Distinct pairs ``(a, b)`` of sample keys (a < b) that share a band key of their questions.
    ``rows``: sample_key, question, phash, dhash (null without an image)."""
    keyed = rows.select(
        "sample_key", "question", "phash", "dhash",
        F.posexplode(band_keys_udf(settings.num_perm, settings.num_bands, settings.seed)(F.col("question"))).alias("band", "key"),
    )
    size = F.count("*").over(Window.partitionBy("band", "key"))
    keyed = keyed.withColumn("_size", size)
    small = keyed.where(F.col("_size") <= settings.max_bucket).select("sample_key", "band", "key")
    a, b = small.alias("a"), small.alias("b")
    pairs = a.join(b, (F.col("a.band") == F.col("b.band")) & (F.col("a.key") == F.col("b.key"))
                   & (F.col("a.sample_key") < F.col("b.sample_key"))).select(
        F.col("a.sample_key").alias("a"), F.col("b.sample_key").alias("b"))
    hot = keyed.where(F.col("_size") > settings.max_bucket)
    for order in (F.coalesce(F.col("phash"), F.lit(0)), F.coalesce(F.col("dhash"), F.lit(0))):
        w = Window.partitionBy("band", "key").orderBy(order, F.col("question"), F.col("sample_key"))
        near = F.array(*[F.lead("sample_key", k).over(w) for k in range(1, settings.neighbours + 1)])
        pairs = pairs.unionByName(
            hot.select(F.col("sample_key").alias("x"), near.alias("_near"))
            .select("x", F.explode("_near").alias("y")).where(F.col("y").isNotNull())
            .select(F.least("x", "y").alias("a"), F.greatest("x", "y").alias("b")))
    return pairs.distinct()


def near_pairs(pairs: DataFrame, rows: DataFrame, rule: NearRule) -> DataFrame:
    """The candidate pairs the rule calls near duplicates: a, b, jaccard (of the questions' shingles) and
    image_bits (null when neither has an image)."""
    fields = ["question", "answer", "phash", "dhash", "template"]
    ra = rows.select(F.col("sample_key").alias("a"), *[F.col(c).alias(f"a_{c}") for c in fields])
    rb = rows.select(F.col("sample_key").alias("b"), *[F.col(c).alias(f"b_{c}") for c in fields])
    joined = pairs.join(ra, "a").join(rb, "b")
    decided = joined.select(
        "a", "b",
        _decide_pairs_udf(rule)(*[F.col(f"a_{c}") for c in fields], *[F.col(f"b_{c}") for c in fields]).alias("d"),
    )
    return decided.where("d.near").select("a", "b", F.col("d.jaccard").alias("jaccard"),
                                          F.col("d.image_bits").alias("image_bits"))


class ComponentsDidNotConverge(RuntimeError):
    """The label rounds did not settle within ``max_rounds`` (a chain of near pairs longer than that)."""


def components(edges: DataFrame, persist: Persist, max_rounds: int = 40) -> tuple[DataFrame, int]:
    """Connected components of an undirected graph given as edges ``(a, b)``: ``(node, cluster)`` for every
    node of an edge, the cluster being the smallest node of its component, and the rounds it took.

    Each round hooks every edge's larger label onto its smaller one, then lets each node take its label's
    label (pointer jumping), so long chains settle in a logarithmic number of rounds; a round's labels are
    persisted (lineage cut) and compared with the last ones."""
    nodes = edges.select(F.col("a").alias("node")).union(edges.select(F.col("b").alias("node"))).distinct()
    labels = persist(nodes.select("node", F.col("node").alias("label")), "components-0")
    for round_ in range(1, max_rounds + 1):
        la, lb = labels.alias("la"), labels.alias("lb")
        hooked = (edges.join(la, F.col("a") == F.col("la.node")).join(lb, F.col("b") == F.col("lb.node"))
                  .select(F.col("la.label").alias("lu"), F.col("lb.label").alias("lv")))
        low = F.least("lu", "lv")
        proposals = hooked.select(F.explode(F.array("lu", "lv")).alias("node"), low.alias("label"))
        merged = labels.unionByName(proposals).groupBy("node").agg(F.min("label").alias("label"))
        n, p = merged.alias("n"), merged.alias("p")
        jumped = n.join(p, F.col("n.label") == F.col("p.node"), "left").select(
            F.col("n.node").alias("node"), F.least(F.col("n.label"), F.coalesce(F.col("p.label"), F.col("n.label"))).alias("label"))
        # labels only fall, so a round changed something exactly when some label fell
        new = persist(jumped, f"components-{round_}")
        changed = new.alias("x").join(labels.alias("y"), "node").where(F.col("x.label") != F.col("y.label")).limit(1).count()
        labels = new
        if not changed:
            return labels.select("node", F.col("label").alias("cluster")), round_
    raise ComponentsDidNotConverge(f"near-duplicate clusters did not settle in {max_rounds} rounds "
                                   "(raise cleaning.near_dup.max_rounds)")


def keep_order(source_priority: list[str]) -> list[Column]:
    """The order that picks a cluster's kept row: the row that already carries a trace, then the sources in
    ``source_priority`` order (others after), then the smallest sample_key."""
    has_trace = F.col("cot_response").isNotNull() & (F.length(F.trim(F.col("cot_response"))) > 0)
    rank = F.lit(len(source_priority))
    for i, name in reversed(list(enumerate(source_priority))):
        rank = F.when(F.col("source") == name, F.lit(i)).otherwise(rank)
    return [has_trace.desc(), rank.asc(), F.col("sample_key").asc()]


def clusters(members: DataFrame, pairs: DataFrame, source_priority: list[str]) -> DataFrame:
    """One row per cluster: cluster_id (its smallest key), kept_key, members (keys), sources, pairs
    (a, b, question_jaccard, image_bits). ``members``: sample_key, cluster, source, cot_response."""
    w = Window.partitionBy("cluster").orderBy(*keep_order(source_priority))
    ranked = members.withColumn("_kept", F.first("sample_key").over(w))
    per_cluster = ranked.groupBy("cluster").agg(
        F.first("_kept").alias("kept_key"),
        F.sort_array(F.collect_list("sample_key")).alias("members"),
        F.sort_array(F.collect_set("source")).alias("sources"),
    )
    edge = F.struct(F.col("a"), F.col("b"), F.col("jaccard").alias("question_jaccard"), F.col("image_bits"))
    cluster_of = members.select(F.col("sample_key").alias("a"), "cluster")
    pair_lists = pairs.join(cluster_of, "a").groupBy("cluster").agg(F.sort_array(F.collect_list(edge)).alias("pairs"))
    return per_cluster.join(pair_lists, "cluster").select(
        F.col("cluster").alias("cluster_id"), "kept_key", "members", "sources", "pairs")


def rejections(clustered: DataFrame, pairs: DataFrame) -> DataFrame:
    """Per member that is not its cluster's kept row: sample_key and the ``reject_detail`` naming the kept
    key, the cluster and the closest pair the member is in (its question Jaccard and image bits)."""
    members = clustered.select("cluster_id", "kept_key", F.explode("members").alias("sample_key")).where(
        F.col("sample_key") != F.col("kept_key"))
    ends = pairs.select(F.col("a").alias("sample_key"), "jaccard", "image_bits").unionByName(
        pairs.select(F.col("b").alias("sample_key"), "jaccard", "image_bits"))
    closest = ends.groupBy("sample_key").agg(F.max(F.struct("jaccard", F.negative(F.coalesce("image_bits", F.lit(0))).alias("nb"),
                                                            "image_bits")).alias("c"))
    image = F.when(F.col("c.image_bits").isNotNull(), F.concat(F.lit(", image "), F.col("c.image_bits").cast("string"),
                                                                F.lit(" bits apart"))).otherwise(F.lit(""))
    detail = F.concat(F.lit("near duplicate of "), F.col("kept_key"), F.lit(" (cluster "), F.col("cluster_id"),
                      F.lit(": question jaccard "), F.format_number(F.col("c.jaccard"), 2), image, F.lit(")"))
    return members.join(closest, "sample_key").select("sample_key", detail.alias("detail"))
