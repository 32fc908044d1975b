"""A deterministic synthetic dump in the HF layout, with the dump's own column names.

Images are drawn with PIL (geometry, bar charts, grids); rows carry the cases every stage must handle:
English and Chinese questions, noisy ones (links, score notes, question numbers, "just give the
answer"), coding and drawing tasks, images in RGB/RGBA/CMYK/palette/grey/16-bit modes, some over 2048 px,
a corrupt one and a missing one, rows with and without CoT and caption, right and wrong answers, a CoT
looping on a 50-word passage, malformed think/answer tags, a duplicate key and a row without a question.
The same ``rows`` and ``seed`` always give byte-identical files.
"""

from __future__ import annotations

import io
import json
import math
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

SUBSETS = ("synth-geometry", "synth-charts", "synth-grids")
MARKER = ".mfr-sample"
ROWS_PER_SHARD = 5000

# Special cases, one row each, at the start of the dump; every other row is "normal".
SCENARIOS = (
    "zh", "link", "score_note", "qnum", "just_answer", "coding", "drawing", "no_cot_no_caption",
    "wrong_answer", "looping_cot", "unclosed_think", "reversed_tags", "answer_in_think", "short_cot",
    "rgba", "cmyk", "palette", "grey", "grey16", "large_jpeg", "large_png", "corrupt_image", "no_image",
    "mixed_language", "no_caption", "no_cot", "empty_question", "duplicate_key", "email_signature",
    "zh_just_answer", "empty_answer_boxed", "cross_source_duplicate",
)

_FILLER = (
    "Looking at the figure again, the labelled quantity {a} fits the constraint, so step {k} holds.",
    "Let me double-check step {k}: with value {b} the relation stays consistent with the diagram.",
    "In step {k} I compare the marked length {a} against {b}, which keeps the configuration valid.",
    "Step {k} uses the visual cue near vertex {v}, where the measure reads {a} units.",
    "For step {k}, the relation between {a} and {b} follows from the layout shown in the picture.",
    "Checking the picture once more at step {k}, the element at {v} agrees with the value {b}.",
)


@dataclass
class Row:
    data: dict[str, Any]
    image: tuple[bytes | None, str | None]  # (bytes, path)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int = 85) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _draw_triangle(size: tuple[int, int], a: int, b: int, tag: int) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    m = max(8, w // 12)
    pts = [(m, h - m), (w - m, h - m), (m, m + (tag % 7) * 3)]
    d.polygon(pts, outline="black", width=max(1, w // 200))
    d.text((w // 2, h - m + 2), f"a={a}", fill="blue")
    d.text((m + 4, h // 2), f"b={b}", fill="blue")
    d.text((4, 4), f"#{tag}", fill="grey")
    return img


def _draw_bars(size: tuple[int, int], values: list[int], tag: int) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, (250, 250, 245))
    d = ImageDraw.Draw(img)
    bw = w // (len(values) * 2 + 1)
    top = max(values)
    for i, v in enumerate(values):
        x = bw * (2 * i + 1)
        y = h - 20 - int((h - 40) * v / top)
        d.rectangle([x, y, x + bw, h - 20], fill=((50 * i) % 255, 120, 200 - 30 * i % 200))
        d.text((x, h - 16), "ABCDEF"[i], fill="black")
    d.text((4, 4), f"#{tag}", fill="grey")
    return img


def _draw_grid(size: tuple[int, int], cells: list[int], n: int, tag: int) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    cw, ch = w // n, h // n
    for idx in range(n * n):
        r, c = divmod(idx, n)
        box = [c * cw, r * ch, (c + 1) * cw - 1, (r + 1) * ch - 1]
        d.rectangle(box, outline="black", fill="black" if idx in cells else "white")
    d.text((2, 2), f"#{tag}", fill="red")
    return img


def _words(rng: random.Random, n_sentences: int, a: Any, b: Any, start: int = 1) -> str:
    out = []
    for k in range(start, start + n_sentences):
        tpl = _FILLER[rng.randrange(len(_FILLER))]
        out.append(tpl.format(k=k, a=a, b=b, v="ABCD"[k % 4]))
    return " ".join(out)


def _cot(rng: random.Random, intro: str, final: str, a: Any, b: Any, n_sentences: int = 18) -> str:
    body = _words(rng, n_sentences, a, b)
    return (
        f"<think>{intro} First I extract everything the image shows. Then I set up the problem. "
        f"{body} Finally I validate the result against the figure, and the answer is {final}.</think>\n"
        f"<answer>{final}</answer>"
    )


def _caption(rng: random.Random, kind: str, details: str, n_sentences: int = 8) -> str:
    body = _words(rng, n_sentences, details, kind)
    return (
        f"The image is a {kind} on a plain background. Global layout: {details}. "
        f"Symbolic elements and labels are drawn in dark ink. {body}"
    )


def _base_row(i: int, rng: random.Random, subset: str) -> Row:
    size = (320 + (i % 5) * 16, 240 + (i % 3) * 16)
    if subset == "synth-geometry":
        a, b = rng.randint(3, 12), rng.randint(3, 12)
        c = round(math.hypot(a, b), 2)
        answer = f"{c:g}"
        q = f"In the right triangle shown, the legs are a = {a} and b = {b}. Find the hypotenuse."
        img = _draw_triangle(size, a, b, i)
        kind, details, ra, rb = "geometry diagram", f"a right triangle with legs {a} and {b}", a, b
    elif subset == "synth-charts":
        values = [rng.randint(1, 40) for _ in range(4)]
        while values.count(max(values)) > 1:
            values[values.index(max(values))] += 1
        answer = "ABCD"[values.index(max(values))]
        q = "Which bar in the chart is the tallest? Options: A, B, C, D."
        img = _draw_bars(size, values, i)
        kind, details, ra, rb = "bar chart", f"four bars with heights {values}", values[0], values[1]
    else:
        n = 4 + i % 3
        cells = sorted(rng.sample(range(n * n), rng.randint(2, n * n // 2)))
        answer = str(len(cells))
        q = f"How many cells of the {n}x{n} grid are filled in black?"
        img = _draw_grid(size, cells, n, i)
        kind, details, ra, rb = "grid puzzle", f"a {n}x{n} grid with {len(cells)} black cells", n, len(cells)
    data = {
        "source": subset,
        "id": 100000 + i,
        "ori_question": q,
        "original_answer": f"Solution: reasoning from the figure gives {answer}.",
        "question": f"<image>{q}",
        "answer": answer,
        "caption": _caption(rng, kind, details, n_sentences=9),
        "qwen3vl_235b_thinking_response": _cot(rng, f"The question asks: {q}", answer, ra, rb),
        "pass_rate": rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]),
        "is_consistent": True,
        "consistency_analysis": f"The trace's final answer {answer} equals the ground truth {answer}.",
    }
    image = (_png(img), None)
    return Row(data, image)


_LOOP = (
    "Wait, let me reconsider the measurement of the side again because the figure might be "
    "drawn to scale and the label could refer to a different segment than the one I assumed, "
    "so I should look at the vertex labels carefully and recompute the length from the given "
    "values before I commit to any final answer for this problem right now."
)
_ZH = "<image>如图，直角三角形的两条直角边分别为3和4，求斜边的长度。"

# Image scenarios: the row's image re-encoded (None = left as it is when the row has no image).
_IMAGE_EDITS: dict[str, Callable[[Image.Image], bytes]] = {
    "rgba": lambda im: _png(_with_alpha(im)),
    "cmyk": lambda im: _jpeg(im.convert("CMYK")),
    "palette": lambda im: _png(im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    "grey": lambda im: _png(im.convert("L")),
    "grey16": lambda im: _png(im.convert("I").point(lambda v: v * 256).convert("I;16")),
    "large_png": lambda im: _png(im.resize((3000, 1000))),
    "large_jpeg": lambda im: _jpeg(im.resize((2600, 1900))),
}

# Text scenarios: fields replaced, computed from the row's fields (d) and the sample's rng.
_FIELD_EDITS: dict[str, Callable[[dict[str, Any], random.Random], dict[str, Any]]] = {
    "zh": lambda d, rng: {"ori_question": _ZH, "question": _ZH, "answer": "5",
                          "qwen3vl_235b_thinking_response": _cot(rng, "The legs are 3 and 4.", "5", 3, 4)},
    "zh_just_answer": lambda d, rng: dict.fromkeys(("ori_question", "question"), "<image>图中共有几个黑色格子？直接写出答案。"),
    "mixed_language": lambda d, rng: dict.fromkeys(("ori_question", "question"), f"<image>{d['ori_question']} 请给出详细的推理过程。"),
    "link": lambda d, rng: {"question": f"<image>{d['ori_question']} See https://www.example-tutor.com/q/8812 for more practice problems."},
    "score_note": lambda d, rng: dict.fromkeys(("ori_question", "question"), f"<image>第3题（5分）{d['ori_question']}"),
    "qnum": lambda d, rng: {"question": f"<image>Q12. {d['ori_question']} (5 points)"},
    "just_answer": lambda d, rng: {"question": f"<image>{d['ori_question']} Just give the answer."},
    "email_signature": lambda d, rng: {
        "question": f"<image>{d['ori_question']}\n\nContact: tutor@example.org -- Best regards, The Math Team"},
    "coding": lambda d, rng: {
        **dict.fromkeys(("ori_question", "question"),
                        "<image>Write a Python function that reads the values shown in the chart and returns them as a list."),
        "answer": "def read_values(): return [12, 7, 30, 18]"},
    "drawing": lambda d, rng: {
        **dict.fromkeys(("ori_question", "question"), "<image>Draw the reflection of the triangle in the figure across its longest side."),
        "answer": "(drawing)"},
    "no_cot_no_caption": lambda d, rng: {"qwen3vl_235b_thinking_response": None, "caption": None},
    "no_cot": lambda d, rng: {"qwen3vl_235b_thinking_response": None},
    "no_caption": lambda d, rng: {"caption": None},
    "wrong_answer": lambda d, rng: {
        "qwen3vl_235b_thinking_response": _cot(rng, f"The question asks: {d['ori_question']}", "999", 1, 2),
        "is_consistent": False, "pass_rate": 0.0,
        "consistency_analysis": f"The trace answers 999 but the ground truth is {d['answer']}."},
    "looping_cot": lambda d, rng: {
        "qwen3vl_235b_thinking_response": f"<think>Start. {' '.join([_LOOP] * 4)} Done.</think>\n<answer>{d['answer']}</answer>"},
    "unclosed_think": lambda d, rng: {
        "qwen3vl_235b_thinking_response": d["qwen3vl_235b_thinking_response"].replace("</think>", "")},
    "reversed_tags": lambda d, rng: {
        "qwen3vl_235b_thinking_response": d["qwen3vl_235b_thinking_response"].replace("<think>", "#T#")
        .replace("</think>", "<think>").replace("#T#", "</think>")},
    "answer_in_think": lambda d, rng: {
        "qwen3vl_235b_thinking_response": f"{d['qwen3vl_235b_thinking_response'].split('</think>')[0]} "
                                          f"<answer>{d['answer']}</answer></think>"},
    "short_cot": lambda d, rng: {"qwen3vl_235b_thinking_response": f"<think>It is {d['answer']}.</think><answer>{d['answer']}</answer>"},
    "empty_question": lambda d, rng: {"ori_question": None, "question": "   "},
    "empty_answer_boxed": lambda d, rng: {
        "original_answer": f"Reading the figure step by step gives the result.\nTherefore the answer is \\boxed{{{d['answer']}}}.",
        "answer": ""},
}


def _apply(name: str, row: Row, rng: random.Random, rows_so_far: list[Row]) -> None:
    """Turn one generated row into the scenario ``name`` (a hostile or special case the pipeline must handle)."""
    img_bytes = row.image[0]
    if name in _IMAGE_EDITS:
        if img_bytes is not None:
            with Image.open(io.BytesIO(img_bytes)) as im:
                row.image = (_IMAGE_EDITS[name](im.convert("RGB")), None)
    elif name in _FIELD_EDITS:
        row.data.update(_FIELD_EDITS[name](row.data, rng))
    elif name == "corrupt_image":
        row.image = (img_bytes[: len(img_bytes) // 3] if img_bytes else b"\x89PNG\r\n", None)
    elif name == "no_image":
        row.image = (None, None)
    elif name == "cross_source_duplicate":
        other = rows_so_far[SCENARIOS.index("no_caption")]
        row.data["question"], row.data["ori_question"] = other.data["question"], other.data["ori_question"]
        row.image = other.image
    elif name == "duplicate_key":
        first = rows_so_far[0].data
        row.data["source"], row.data["id"] = first["source"], first["id"]


def _with_alpha(im: Image.Image) -> Image.Image:
    rgba = im.convert("RGBA")
    alpha = Image.linear_gradient("L").resize(rgba.size)
    rgba.putalpha(alpha)
    return rgba


def generate_rows(rows: int, seed: int = 0) -> list[Row]:
    out: list[Row] = []
    for i in range(rows):
        rng = random.Random(seed * 1_000_003 + i)
        scenario = SCENARIOS[i] if i < len(SCENARIOS) else "normal"
        subset = SUBSETS[i % len(SUBSETS)]
        row = _base_row(i, rng, subset)
        if scenario != "normal":
            _apply(scenario, row, rng, out)
        out.append(row)
    return out


def _arrow_table(rows: list[Row]):
    import pyarrow as pa

    from mfr.dump.layout import DUMP_FEATURES, dump_arrow_schema

    cols = [k for k in DUMP_FEATURES if k != "image"]
    schema = dump_arrow_schema()
    data = {c: [r.data[c] for r in rows] for c in cols}
    data["image"] = [None if r.image[0] is None else {"bytes": r.image[0], "path": r.image[1]} for r in rows]
    return pa.Table.from_pydict(data, schema=schema)


def write_sample(out: str | Path, rows: int, seed: int = 0, force: bool = False) -> dict[str, int]:
    """Write ``rows`` synthetic rows as ``<out>/<subset>/train-XXXXX-of-YYYYY.parquet``; rows per subset."""
    import pyarrow.parquet as pq

    if rows < 1:
        raise ValueError("--rows must be at least 1")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists() and not force:
            raise FileExistsError(f"{out} is not empty and was not written by `mfr sample` (use --force)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    all_rows = generate_rows(rows, seed)
    counts: dict[str, int] = {}
    for subset in SUBSETS:
        subset_rows = [r for r in all_rows if r.data["source"] == subset]
        if not subset_rows:
            continue
        shards = max(1, math.ceil(len(subset_rows) / ROWS_PER_SHARD))
        (out / subset).mkdir()
        for s in range(shards):
            part = subset_rows[s * ROWS_PER_SHARD : (s + 1) * ROWS_PER_SHARD]
            pq.write_table(_arrow_table(part), out / subset / f"train-{s:05d}-of-{shards:05d}.parquet")
        counts[subset] = len(subset_rows)
    (out / MARKER).write_text(json.dumps({"rows": rows, "seed": seed, "per_subset": counts}) + "\n")
    return counts
