"""Selection: the 50-gram check against the seed's Counter, and rule verification against the dump's labels.

Run on the real sample (../shared/data/mmfr-real-sample) when present; the n-gram comparison also uses
synthetic looping traces. Both sides run in this one process, on the same traces.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

from mfr.answers.verify import verify
from mfr.text.repetition import has_repeated_ngram, think_part

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


def run(spark, make_cfg, workdir: Path, rows: int = 0) -> dict[str, float]:  # noqa: ARG001 - no Spark needed
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
    t0 = time.perf_counter()
    ours = [has_repeated_ngram(think_part(t).split(), 50, 3) for t in traces]
    t1 = time.perf_counter()
    seed = [_seed_ngram(t) for t in traces]
    t2 = time.perf_counter()
    out = {
        "ngram.words_per_s": words / (t1 - t0),
        "ngram.seed_words_per_s": words / (t2 - t1),
        "ngram.speedup_vs_reference": (t2 - t1) / (t1 - t0),
        "ngram.decisions_identical": float(ours == seed),
    }
    if real:
        labelled = [r for r in real if r["answer"]]
        verdicts = [(verify(r["question"], r["answer"], r["qwen3vl_235b_thinking_response"]).consistent, r["is_consistent"]) for r in real]
        with_gold = [(v, lab) for (v, lab), r in zip(verdicts, real) if r["answer"]]
        negatives = [lab for _, lab in verdicts if lab is False]
        out.update({
            "verify.agreement": sum((v is True) == lab for v, lab in with_gold) / len(labelled),
            "verify.agreement_all_rows": sum((v is True) == lab for v, lab in verdicts) / len(real),
            "verify.false_accept_rate": sum(v is True and lab is False for v, lab in verdicts) / len(negatives),
            "verify.false_accepts": float(sum(v is True and lab is False for v, lab in verdicts)),
            "verify.label_inconsistent_rows": float(len(negatives)),
            "verify.undecided_rate": sum(v is None for v, _ in verdicts) / len(real),
        })
    return out
