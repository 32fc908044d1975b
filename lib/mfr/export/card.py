"""The HF dataset card (README.md) of an export: what is in it, per source, and how it was built."""

from __future__ import annotations

from typing import Any


def quotas(counts: dict[str, int], n: int) -> dict[str, int]:
    """Split ``n`` over sources in proportion to ``counts`` (largest remainder, so they sum to n)."""
    total = sum(counts.values())
    n = min(n, total)
    if total == 0 or n <= 0:
        return {k: 0 for k in counts}
    exact = {k: n * c / total for k, c in counts.items()}
    out = {k: int(v) for k, v in exact.items()}
    left = n - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


def dataset_card(name: str, per_source: dict[str, dict[str, int]], build: dict[str, Any], splits: list[str]) -> str:
    """Markdown with a YAML header ``datasets``/the hub read (configs → data files per split)."""
    lines = ["---", "license: other", "task_categories:", "- image-text-to-text", "tags:", "- multimodal",
             "- reasoning", "- chain-of-thought", "configs:", "- config_name: default", "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: data/{split}-*.parquet"]
    lines += ["---", "", f"# {name}", "",
              "Image + question samples with long chain-of-thought traces (`<think>…</think><answer>…</answer>`),",
              "built with the MMFineReason recipe (collect → clean → distill → select) by `mfr`.", "",
              "## Rows per source", "", "| source | " + " | ".join(splits) + " |", "|---|" + "---|" * len(splits)]
    for source in sorted(per_source):
        lines.append(f"| {source} | " + " | ".join(str(per_source[source].get(s, 0)) for s in splits) + " |")
    totals = [sum(v.get(s, 0) for v in per_source.values()) for s in splits]
    lines.append("| **total** | " + " | ".join(str(t) for t in totals) + " |")
    lines += ["", "## How it was built", ""]
    lines += [f"- {k}: `{v}`" for k, v in build.items()]
    lines += ["", "Columns keep the source dump's names (`qwen3vl_235b_thinking_response` holds the trace,",
              "`pass_rate` the small model's pass rate, `is_consistent` the answer check). Load with:", "",
              "```python", "from datasets import load_dataset", f'ds = load_dataset("parquet", data_dir="{name}/data")',
              "```", ""]
    return "\n".join(lines)
