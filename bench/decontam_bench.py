"""Benchmark decontamination: recall on planted copies and the false-positive rate, with the defaults.

The corpus (the rows clean would check) is the real sample plus synthetic rows; the benchmark is built here:

* planted items, each an edited copy of one corpus row: half "text" copies (a prefix, upper case, doubled
  spaces, options appended; the image re-encoded as JPEG q70), half "image" copies (every 12th word of the
  question replaced, so no run of 13 words survives; the image at 80 % size, JPEG q60);
* hard negatives: held-out synthetic rows of the same generators (the same template question over another
  figure with other numbers), and real questions put over another row's image.

``decontam.recall`` = planted items whose corpus row is matched ÷ planted items; ``decontam.false_positive_rate``
= corpus rows matched that no planted item came from ÷ corpus rows no planted item came from (a row matched
only through a hard negative counts as a false positive). ``decontam.signal.<name>`` counts the rows each
signal caught; ``decontam.rows_per_s`` the matching step's rate (Spark, this session).
"""

from __future__ import annotations

import io
import random
import time
from pathlib import Path

from PIL import Image

from mfr.dedup.contamination import DecontamRule, words
from mfr.dedup.fingerprint import fingerprints

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmfr-real-sample"


def _real_rows() -> list[dict]:
    import pyarrow.parquet as pq

    out = []
    for p in sorted(REAL.rglob("*.parquet")):
        for r in pq.read_table(p, columns=["id", "question", "image"]).to_pylist():
            data = (r.get("image") or {}).get("bytes")
            out.append({"key": f"{p.parent.name}:{r['id']}", "question": r["question"] or "", "image": data,
                        "source": p.parent.name})
    return out


def _synthetic_rows(n: int, seed: int) -> list[dict]:
    """Synthetic rows past the generator's planted scenarios (duplicates among them), each (question, image)
    once: distinct items, many from one template."""
    from mfr.sample.synthetic import SCENARIOS, generate_rows

    out, seen = [], set()
    for r in generate_rows(n + len(SCENARIOS), seed=seed)[len(SCENARIOS):]:
        key = (r.data["question"], r.image[0])
        if key not in seen:
            seen.add(key)
            out.append({"key": f"synth{seed}:{r.data['id']}", "question": r.data["question"] or "", "image": r.image[0],
                        "source": r.data["source"]})
    return out


def _jpeg(data: bytes | None, quality: int, scale: float = 1.0) -> bytes | None:
    if not data:
        return None
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if scale != 1.0:
        img = img.resize((max(8, int(img.width * scale)), max(8, int(img.height * scale))))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _text_copy(q: str) -> str:
    return "Question:  " + q.replace("<image>", "").upper().replace(" ", "  ") + " Options: (A) yes (B) no"


def _image_copy(q: str) -> str:
    w = q.replace("<image>", "").split()
    if len(words(q)) >= 13:  # break every run of 13 words, numbers untouched
        w = [("xyz" if i % 12 == 11 and not any(c.isdigit() for c in x) else x) for i, x in enumerate(w)]
    return " ".join(w)


def _pixels_apart(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two images as 64 × 64 greyscale (0–255)."""
    import numpy as np

    x, y = (np.asarray(Image.open(io.BytesIO(d)).convert("L").resize((64, 64)), dtype=np.float32) for d in (a, b))
    return float(np.abs(x - y).mean())


def _prints(data: bytes | None) -> tuple[int | None, int | None]:
    if not data:
        return None, None
    try:
        p, d = fingerprints(data)
    except Exception:
        return None, None
    return p, d


def build(synthetic: int = 1500, planted: int = 120, seed: int = 7) -> tuple[list[dict], list[dict], set[str]]:
    """(corpus rows, benchmark items, keys of the planted rows)."""
    rng = random.Random(seed)
    corpus = _real_rows() + _synthetic_rows(synthetic, seed=0)
    corpus = [r for r in corpus if r["question"].strip()]
    sources = rng.sample(corpus, planted)
    items, origins = [], set()
    for i, r in enumerate(sources):
        text = i % 2 == 0
        q = _text_copy(r["question"]) if text else _image_copy(r["question"])
        image = _jpeg(r["image"], 70) if text else _jpeg(r["image"], 60, 0.8)
        if not text and image is None:
            continue  # an image copy needs an image
        items.append({"item_id": f"plant-{i}", "question": q, "text": q, "image": image, "origin": r["key"]})
        origins.add(r["key"])
    # hard negatives: the same template with other numbers (held-out synthetic rows whose question no corpus
    # row asks), a corpus question over another figure of its source, another question over a corpus image
    asked = {" ".join(words(r["question"])) for r in corpus}
    held_out = [r for r in _synthetic_rows(300, seed=99) if " ".join(words(r["question"])) not in asked]
    items += [{"item_id": f"neg-num{i}", "question": r["question"], "text": r["question"], "image": r["image"]}
              for i, r in enumerate(held_out)]
    with_image = [r for r in corpus if r["image"]]
    for i, r in enumerate(rng.sample(with_image, 150)):
        # a figure of the same source (a template's sibling where the source has templates)
        # (visibly another figure: a synthetic generator draws some figures twice, and those are copies)
        other = next((o for o in rng.sample(with_image, 60) + with_image
                      if o["source"] == r["source"] and _pixels_apart(o["image"], r["image"]) > 12), None)
        if other is None:
            continue
        items.append({"item_id": f"neg-fig{i}", "question": r["question"], "text": r["question"], "image": other["image"]})
        items.append({"item_id": f"neg-img{i}", "question": "What is shown in this picture, and why?", "text": "",
                      "image": r["image"]})
    # a hard negative that the corpus holds after all (a row with its question over a figure within the pixel
    # bound: synthetic templates draw every figure many times) is no negative: dropped
    by_question: dict[str, list[bytes]] = {}
    for r in corpus:
        if r["image"]:
            by_question.setdefault(" ".join(words(r["question"])), []).append(r["image"])

    def held(it: dict) -> bool:
        same = by_question.get(" ".join(words(it["question"])), [])
        return it["image"] is not None and any(_pixels_apart(it["image"], x) <= 12 for x in same)

    items = [it for it in items if it["item_id"].startswith("plant-") or not held(it)]
    return corpus, items, origins


def run(spark, make_cfg, workdir: Path, rows: int = 1500) -> dict[str, float]:
    from mfr.stages.decontaminate import benchmark_matches

    corpus, items, origins = build(synthetic=rows)
    rule = DecontamRule()
    crow = [(r["key"], r["question"], *_prints(r["image"])) for r in corpus]
    irow = [("bench", it["item_id"], it["question"], it["text"] or it["question"], it["image"] is not None,
             *_prints(it["image"])) for it in items]
    rows_df = spark.createDataFrame(crow, "sample_key string, question string, phash long, dhash long")
    items_df = spark.createDataFrame(irow, "benchmark string, item_id string, question string, text string, "
                                           "has_image boolean, phash long, dhash long")
    start = time.perf_counter()
    matches = benchmark_matches(rows_df, items_df, rule).collect()
    seconds = time.perf_counter() - start
    planted_items = [it for it in items if it["item_id"].startswith("plant-")]
    by_item: dict[str, set[str]] = {}
    for m in matches:
        by_item.setdefault(m["item_id"], set()).add(m["sample_key"])
    found = [it for it in planted_items if it["origin"] in by_item.get(it["item_id"], set())]
    for it in planted_items:
        if it not in found:
            print("missed:", it["item_id"], it["origin"], repr(it["question"][:90]))
    # a false positive: a corpus row matched by a hard negative (planted items' matches beyond their own row are
    # the corpus's own near copies of it, counted apart)
    false = {m["sample_key"] for m in matches if m["item_id"].startswith("neg-")}
    for m in matches:
        if m["item_id"].startswith("neg-") and len([x for x in false if x <= m["sample_key"]]) <= 5:
            print("false positive:", m["sample_key"], m["item_id"], m["signal"])
    extra = {m["sample_key"] for m in matches if m["item_id"].startswith("plant-")} - origins
    signals: dict[str, set[str]] = {}
    for m in matches:
        signals.setdefault(m["signal"], set()).add(m["sample_key"])
    return {
        "decontam.recall": len(found) / max(1, len(planted_items)),
        "decontam.false_positive_rate": len(false) / max(1, len(corpus)),
        "decontam.planted": float(len(planted_items)),
        "decontam.corpus_rows": float(len(corpus)),
        "decontam.hard_negative_items": float(len(items) - len(planted_items)),
        "decontam.planted_copies_in_corpus": float(len(extra)),
        **{f"decontam.signal.{s}": float(len(v)) for s, v in sorted(signals.items())},
        "decontam.rows_per_s": len(corpus) / seconds,
    }
