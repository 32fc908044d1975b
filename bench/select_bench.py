"""Selection: the 50-gram check against the seed's Counter, and rule verification against the dump's labels.

Run on the real sample (../shared/data/mmfr-real-sample) when present; the n-gram comparison also uses
synthetic looping traces. Both sides run in this one process, on the same traces.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import pandas as pd
from pyspark.sql import functions as F
from pyspark.sql import types as T

from mfr.config import load_config
from mfr.filters import SelectionRules, check_row
from mfr.text import repetition
from mfr.text.repetition import text_has_repeated_ngram, think_part

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmfr-real-sample"


def _seed_ngram(text: str, n: int = 50, freq: int = 3) -> bool:
    """The seed's way: a Counter of every 50-word tuple of the think part."""
    words = think_part(text).split()
    grams = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return any(c >= freq for c in grams.values())


def _real_rows() -> list[dict]:
    import pyarrow.parquet as pq

    if not REAL.is_dir():
        return []
    return [r for p in sorted(REAL.rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]


def run(spark, make_cfg, workdir: Path, rows: int = 0) -> dict[str, float]:
    real = _real_rows()
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(2000)]
    loops = []
    for _ in range(200):
        unit = " ".join(rng.choice(vocab) for _ in range(rng.randint(50, 120)))
        pre = " ".join(rng.choice(vocab) for _ in range(rng.randint(100, 600)))
        loops.append(f"<think>{pre} {' '.join([unit] * rng.randint(1, 4))}</think><answer>1</answer>")
    traces = [r["qwen3vl_235b_thinking_response"] for r in real if r["qwen3vl_235b_thinking_response"]] * 10 + loops
    words = sum(len(think_part(t).split()) for t in traces)

    def timed(fn):
        start = time.perf_counter()
        decisions = [fn(think_part(t)) for t in traces]
        return time.perf_counter() - start, decisions

    ours_t, np_t, seed_t = [], [], []
    for _ in range(3):
        t, ours = timed(lambda x: text_has_repeated_ngram(x, 50, 3))
        ours_t.append(t)
        t, numpy_path = timed(lambda x: text_has_repeated_ngram(x, 50, 3, native=False))
        np_t.append(t)
        start = time.perf_counter()
        seed = [_seed_ngram(t) for t in traces]
        seed_t.append(time.perf_counter() - start)
    out = {
        "ngram.words_per_s": words / min(ours_t),
        "ngram.seed_words_per_s": words / min(seed_t),
        "ngram.speedup_vs_reference": min(seed_t) / min(ours_t),
        "ngram.numpy_path_speedup_vs_reference": min(seed_t) / min(np_t),
        "ngram.c_kernel": float(repetition._native_has_repeat is not None),
        "ngram.decisions_identical": float(ours == seed == numpy_path),
    }
    if real:
        labelled = [r for r in real if r["answer"]]
        # select's own verdict (check_row: the no-answer-check sources' written solutions too), on every row
        rules = SelectionRules.from_config(load_config())
        verdicts = [(check_row(r["source"], r["question"], r["answer"], r["qwen3vl_235b_thinking_response"], None,
                               rules).verdict.consistent, r["is_consistent"]) for r in real]
        with_gold = [(v, lab) for (v, lab), r in zip(verdicts, real) if r["answer"]]
        negatives = [lab for _, lab in verdicts if lab is False]
        decided = [(v, lab) for v, lab in with_gold if v is not None]
        out.update({
            # rules only: the decided verdicts against the dump's label; the undecided go to the judge
            "verify.agreement": sum(v == lab for v, lab in decided) / len(decided),
            "verify.agreement_undecided_as_false": sum((v is True) == lab for v, lab in with_gold) / len(labelled),
            "verify.agreement_all_rows": sum((v is True) == lab for v, lab in verdicts) / len(real),
            "verify.false_accept_rate": sum(v is True and lab is False for v, lab in verdicts) / len(negatives),
            "verify.false_accepts": float(sum(v is True and lab is False for v, lab in verdicts)),
            "verify.label_inconsistent_rows": float(len(negatives)),
            "verify.undecided_rate": (len(with_gold) - len(decided)) / len(with_gold),
        })
        for source in sorted({r["source"] for r in real}):  # per source: a rule tuned to one source shows here
            mine = [(v, lab) for (v, lab), r in zip(verdicts, real) if r["source"] == source and r["answer"]]
            settled = [(v, lab) for v, lab in mine if v is not None]
            if mine:
                out[f"verify.by_source.{source}.agreement"] = sum(v == lab for v, lab in settled) / len(settled) if settled else 0.0
                out[f"verify.by_source.{source}.undecided_rate"] = (len(mine) - len(settled)) / len(mine)
                out[f"verify.by_source.{source}.false_accepts"] = float(sum(v is True and lab is False for v, lab in mine))
    return out


def _synthetic_distilled(spark, rows: int):
    """``rows`` distilled-shaped rows with ~1000-word traces (every 50th loops on a 60-word passage)."""

    schema = T.StructType([T.StructField(c, T.StringType()) for c in ("question", "answer", "cot_response", "caption")])

    @F.pandas_udf(schema)  # type: ignore[call-overload]
    def make(ids: pd.Series) -> pd.DataFrame:
        out = []
        for i in ids:
            r = random.Random(int(i))
            words = [f"w{r.randrange(5000)}" for _ in range(1000)]
            if i % 50 == 0:
                loop = words[:60]
                words = words[:700] + loop * 3 + words[880:]
            a = str(r.randrange(100))
            out.append((f"<image>What is the value of item {i}?", a,
                        f"<think>{' '.join(words)}</think>\n<answer>{a}</answer>",
                        " ".join(f"c{r.randrange(3000)}" for _ in range(120))))
        return pd.DataFrame(out, columns=["question", "answer", "cot_response", "caption"])

    base = spark.range(rows).withColumn("_g", make("id"))
    return base.select(
        F.concat_ws(":", F.lit("bench"), F.col("id").cast("string")).alias("sample_key"), F.lit("bench").alias("source"),
        F.lit("bench").alias("subset"), "id", "_g.question", F.lit(None).cast("string").alias("original_question"),
        "_g.answer", F.lit(None).cast("string").alias("original_answer"), F.lit(None).cast("string").alias("image_id"),
        "_g.caption", "_g.cot_response", (F.col("id") % 5 / 4).alias("source_pass_rate"),
        F.lit(True).alias("source_is_consistent"), F.lit(None).cast("string").alias("reject_reason"),
    )


def run_stage_bench(spark, make_cfg, workdir: Path, rows: int = 100000) -> dict[str, float]:
    from mfr.lakehouse import Lakehouse
    from mfr.runlog import RunLog
    from mfr.runner import run_stage

    cfg = make_cfg("spark.shuffle_partitions=4")
    lh = Lakehouse(spark, cfg)
    lh.ensure_schema()
    runs = RunLog(lh)
    run = runs.start("distill", cfg, {}, None)
    version = lh.write_stage_output(_synthetic_distilled(spark, rows).repartition(16), "distilled", run)
    runs.finish(run, output_version=version, rows_in=rows, rows_kept=rows, rows_rejected=0, rows_quarantined=0, metrics={})
    start = time.perf_counter()
    result = run_stage(spark, cfg, "select")
    elapsed = time.perf_counter() - start
    return {
        "select.rows": float(result.rows_in),
        "select.rows_per_s": result.rows_in / elapsed,
        "select.rejected_ngram_repetition": result.metrics.get("rejected.ngram_repetition", 0.0),
    }
