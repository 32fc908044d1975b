"""Cleaning: image throughput against the seed's way, model-call fraction and translation recall, and
a worker's peak memory over hostile images.

* ``image.speedup_vs_reference``: images/s on one core over the real sample's images, ``clean_image``
  against the seed's way (decode, RGB, LANCZOS thumbnail, PNG re-encode, every image), side by side in
  this process, same images, several rounds each.
* ``image.speedup_large_jpeg``: the same on JPEGs larger than 2048 px. The real sample has none, so
  its images are upscaled to 2600-4000 px and saved as JPEG q90 (photographic content, real sizes).
* ``clean.llm_call_fraction`` / ``clean.translation_recall``: the clean stage (Spark, no endpoint) on
  the real sample re-cleaned from ``original_question``. Non-English rows are counted independently
  of the router, by Unicode character names (CJK, Hangul, kana, Cyrillic, Arabic, ...).
* ``image.peak_rss_mb``: peak RSS of a fresh Python process that reads the hostile set (bomb header,
  truncated files, random bytes, SVG, a 9000x9000 PNG within the pixel limit, large JPEGs) as one
  Arrow batch and cleans it as the UDF does; ``image.rss_before_cleaning_mb`` is the same process
  after loading its input, before the first image.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import unicodedata
from pathlib import Path

from PIL import Image

from mfr.image.clean import clean_image, reference_clean

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmfr-real-sample"
_FOREIGN_SCRIPTS = ("CJK", "HIRAGANA", "KATAKANA", "HANGUL", "CYRILLIC", "ARABIC", "HEBREW", "DEVANAGARI", "THAI")


def real_images() -> list[bytes]:
    import pyarrow.parquet as pq

    out = []
    for p in sorted(REAL.rglob("*.parquet")):
        for x in pq.read_table(p, columns=["image"]).column("image").to_pylist():
            if x and x.get("bytes"):
                out.append(x["bytes"])
    return out


def large_jpegs(images: list[bytes], count: int = 12) -> list[bytes]:
    out = []
    for i, data in enumerate(images[:count]):
        img = Image.open(io.BytesIO(data)).convert("RGB")
        longest = 2600 + (i * 137) % 1400
        scale = longest / max(img.size)
        big = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        big.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def _rate(fn, images: list[bytes], min_seconds: float = 3.0) -> float:
    done, start = 0, time.perf_counter()
    while True:
        for data in images:
            fn(data)
        done += len(images)
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def _side_by_side(images: list[bytes], rounds: int = 3) -> tuple[float, float]:
    ours, ref = [], []
    for _ in range(rounds):  # interleaved, so drift affects both sides alike
        ours.append(_rate(clean_image, images))
        ref.append(_rate(reference_clean, images))
    return max(ours), max(ref)


def is_foreign(text: str | None) -> bool:
    for ch in text or "":
        if ch.isalpha() and ord(ch) > 0x2FF:
            name = unicodedata.name(ch, "")
            if name.startswith(_FOREIGN_SCRIPTS):
                return True
    return False


def hostile_batch() -> list[bytes | None]:
    """The hostile set: bomb header, truncated files, random bytes, SVG, empty, none, a 9000x9000 PNG
    (within the pixel limit, so it is decoded), a truncated copy of it, a large JPEG, a large RGBA PNG."""
    import struct
    import zlib

    import numpy as np

    def enc(img: Image.Image, fmt: str, **kw) -> bytes:
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        return b.getvalue()

    png = bytearray(enc(Image.new("RGB", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", 30000, 30000) + bytes(png[24:29])
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8))
    jpeg = enc(noise, "JPEG", quality=90)
    big_png = enc(Image.new("RGB", (9000, 9000), (200, 10, 10)), "PNG")
    return [bytes(png), jpeg[: len(jpeg) // 2], b"\x00garbage" * 1000, b"<svg></svg>", b"", None,
            big_png, big_png[: len(big_png) // 2], jpeg, enc(noise.convert("RGBA"), "PNG")]


# A fresh worker-like process: reads the batch (Arrow, as a pandas UDF gets it), cleans it, reports RSS.
_WORKER = r"""
import json, resource, sys
import pyarrow.parquet as pq
from mfr.image.clean import clean_image
batch = pq.read_table(sys.argv[1]).column("bytes").to_pylist()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rejects = [clean_image(b).reject for b in batch]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_kb": peak, "before_kb": before, "rejects": rejects}))
"""


def peak_rss(tmp: Path) -> dict[str, float]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "hostile.parquet"
    pq.write_table(pa.table({"bytes": pa.array(hostile_batch(), pa.binary())}), path)
    out = subprocess.run([sys.executable, "-c", _WORKER, str(path)], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    return {"image.peak_rss_mb": res["peak_kb"] / 1024, "image.rss_before_cleaning_mb": res["before_kb"] / 1024,
            "image.rss_increase_mb": (res["peak_kb"] - res["before_kb"]) / 1024}


def run(spark, make_cfg, workdir: Path, rows: int = 0) -> dict[str, float]:
    figures: dict[str, float] = {}
    images = real_images()
    if images:
        ours, ref = _side_by_side(images)
        figures.update({"image.ours_per_s": ours, "image.reference_per_s": ref, "image.speedup_vs_reference": ours / ref})
        big = large_jpegs(images)
        ours, ref = _side_by_side(big, rounds=2)
        figures.update({"image.large_jpeg_ours_per_s": ours, "image.large_jpeg_reference_per_s": ref,
                        "image.speedup_large_jpeg": ours / ref})
        figures.update(_stage_figures(spark, make_cfg))
    workdir.mkdir(parents=True, exist_ok=True)
    figures.update(peak_rss(workdir))
    return figures


def _stage_figures(spark, make_cfg) -> dict[str, float]:
    from mfr.lakehouse import Lakehouse
    from mfr.runner import run_stage

    cfg = make_cfg(f"collection.source={REAL}", "cleaning.input_column=original_question")
    run_stage(spark, cfg, "collect")
    r = run_stage(spark, cfg, "clean")
    rows = Lakehouse(spark, cfg).read("cleaned", r.output_version).select(
        "original_question", "clean_routes", "reject_reason"
    ).collect()
    foreign = [x for x in rows if is_foreign(x["original_question"])]
    routed = [x for x in foreign if "translation" in (x["clean_routes"] or [])]
    return {
        "clean.llm_call_fraction": r.metrics["clean.llm_call_fraction"],
        "clean.rows": float(r.rows_in),
        "clean.non_english_rows": float(len(foreign)),
        "clean.translation_recall": len(routed) / len(foreign) if foreign else 1.0,
    }
