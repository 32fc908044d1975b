"""Clean's near-duplicate step: among the rows clean keeps, clusters of near copies (``mfr.dedup.spark``)
leave one row each; the others are rejected ``near_duplicate``, and each cluster is written to
``mfr.duplicate_clusters`` with the run's id, so a decision can be read and overruled in SQL."""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from mfr.config import Config
from mfr.dedup.minhash import band_count_for
from mfr.dedup.near import NearRule
from mfr.dedup.spark import NearDupSettings, candidate_pairs, clusters, components, near_pairs, rejections, with_templates
from mfr.stages.common import StageContext, persist, reason


def near_dup_settings(cfg: Config) -> NearDupSettings:
    """``cleaning.near_dup.*`` checked (a bad value is one line naming its key, before any write)."""
    s = cfg.settings.cleaning.near_dup
    key = "cleaning.near_dup"
    if not 0.0 < s.question_jaccard <= 1.0:
        raise ValueError(f"{key}.question_jaccard must be in (0, 1], got {s.question_jaccard}")
    if not 0 <= s.image_bits <= 64:
        raise ValueError(f"{key}.image_bits must be 0..64, got {s.image_bits}")
    if s.num_perm < 1 or s.bands < 1 or s.num_perm % s.bands:
        raise ValueError(f"{key}.bands ({s.bands}) must divide {key}.num_perm ({s.num_perm}); for a question "
                         f"Jaccard of {s.question_jaccard} try bands={band_count_for(s.question_jaccard, s.num_perm)}")
    if not 0 <= s.template_bits <= 64:
        raise ValueError(f"{key}.template_bits must be 0..64, got {s.template_bits}")
    for name in ("max_bucket", "neighbours", "max_rounds", "template_images"):
        if getattr(s, name) < 1:
            raise ValueError(f"{key}.{name} must be at least 1, got {getattr(s, name)}")
    rule = NearRule(s.question_jaccard, s.image_bits, s.template_images, s.template_bits)
    return NearDupSettings(rule, s.num_perm, s.bands, 1, s.max_bucket, s.neighbours, s.max_rounds)


@dataclass
class NearDupResult:
    rows: DataFrame  # every row of the input, near copies now rejected
    clusters: DataFrame | None  # cluster_id, kept_key, members, sources, pairs (None: no near pair)
    metrics: dict[str, float]


def mark_near_duplicates(ctx: StageContext, out: DataFrame, prints: DataFrame | None) -> NearDupResult:
    """``out``: clean's rows (``reject_reason`` null where kept); ``prints``: image_id, phash, dhash of the
    kept rows' images (None: no fingerprints, rows compare by question and answer alone)."""
    settings = near_dup_settings(ctx.cfg)
    kept = out.where(F.col("reject_reason").isNull())
    if prints is None:
        with_prints = kept.select("*", F.lit(None).cast("long").alias("phash"), F.lit(None).cast("long").alias("dhash"))
    else:
        with_prints = kept.join(prints.select("image_id", "phash", "dhash"), "image_id", "left")
    rows = persist(ctx, with_templates(with_prints.select("sample_key", "question", "answer", "phash", "dhash", "source",
                                                         "cot_response"), settings.rule.template_images), "near-rows")
    pairs = persist(ctx, near_pairs(candidate_pairs(rows, settings), rows, settings.rule), "near-pairs")
    n_pairs = pairs.count()
    templates = rows.where("template").count()
    metrics = {"near_dup.pairs": float(n_pairs), "near_dup.template_rows": float(templates)}
    if not n_pairs:
        return NearDupResult(out, None, {**metrics, "near_dup.clusters": 0.0, "near_dup.rejected": 0.0})

    labels, rounds = components(pairs.select("a", "b"), lambda df, name: persist(ctx, df, f"near-{name}"),
                                settings.max_rounds)
    members = labels.join(rows, labels["node"] == rows["sample_key"]).select("sample_key", "cluster", "source", "cot_response")
    clustered = persist(ctx, clusters(members, pairs, ctx.cfg.settings.cleaning.near_dup.source_priority), "near-clusters")
    rejected = rejections(clustered, pairs)
    marked = apply_rejections(out, rejected)
    counts = clustered.agg(F.count("*").alias("n"), F.sum(F.size("members") - 1).alias("rejected")).collect()[0]
    metrics.update({"near_dup.clusters": float(counts["n"]), "near_dup.rejected": float(counts["rejected"] or 0),
                    "near_dup.rounds": float(rounds)})
    return NearDupResult(marked, clustered, metrics)


def apply_rejections(out: DataFrame, rejected: DataFrame, code: str = "near_duplicate") -> DataFrame:
    """``out`` with the rows named in ``rejected`` (sample_key, detail) rejected ``code``; a row already
    rejected keeps its own reason."""
    joined = out.join(rejected.select("sample_key", F.col("detail").alias("_new_detail")), "sample_key", "left")
    new = F.col("reject_reason").isNull() & F.col("_new_detail").isNotNull()
    return joined.select(
        *[c for c in out.columns if c not in ("reject_reason", "reject_detail")],
        F.when(new, F.col("_new_detail")).otherwise(F.col("reject_detail")).alias("reject_detail"),
        F.when(new, reason("clean", code)).otherwise(F.col("reject_reason")).alias("reject_reason"),
    ).select(*out.columns)
