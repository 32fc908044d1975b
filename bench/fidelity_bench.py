"""Fidelity to the published dump (`python -m bench.run fidelity`): the real sample through collect →
clean → distill → select → export with the default config and no endpoints, measured against the dump's
own selection (its ``is_consistent`` label; the dump holds the rows its pipeline produced).

* ``fidelity.dump_kept_recall``: of the rows the dump kept (``is_consistent`` true, with an image), the
  share mfr keeps end to end;
* ``fidelity.dump_kept_removed.near_duplicate`` / ``….benchmark_overlap``: rows the dump kept that clean removed
  on purpose (the seed keeps duplicates and checks no benchmark), counted apart from lost rows;
  ``fidelity.dump_kept_recall_less_deliberate`` is the recall over the rest;
* ``fidelity.dump_rejected_kept``: of the rows the dump rejected, the share mfr keeps;
* ``fidelity.rebought``: dump traces or captions of rows the dump kept that distill would ask a teacher for
  again (``pending_model`` here, where no endpoint is configured);
* ``fidelity.export_whole_response``: of the exported records, the share whose assistant turn holds the
  dump response's written solution;
* ``fidelity.verify_agreement`` / ``fidelity.verify_undecided_rate``: in the pipeline (cleaned questions),
  the rules' decided verdicts against the dump's label, and the share the rules leave undecided (the
  judge's), over rows with a gold answer that reach select (``verify.*``, from the select area, are the
  same on the dump's rows as they are).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from bench.select_bench import REAL
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.storage import Storage

_TAGS = re.compile(r"<\s*/?\s*(image|video|audio)\s*>|\[(image|video|audio)\]", re.I)


def _untagged(text: str) -> str:
    """Media tags and their neutral form taken out (the export neutralises tags in model text)."""
    return _TAGS.sub("", text)


def _solution(response: str) -> str:
    """The written solution of a dump response."""
    return _untagged(response.split("</think>", 1)[-1]).strip()


def run(spark, make_cfg, workdir: Path, rows: int = 0) -> dict[str, float]:
    if not REAL.is_dir():
        print(f"fidelity: no real sample at {REAL}, skipped")
        return {}
    out = workdir / f"fidelity-export-{uuid.uuid4().hex[:8]}"
    cfg = make_cfg(f"collection.source={REAL}", f"export.out={out}")
    for stage in ("collect", "clean", "distill", "select", "export"):
        run_stage(spark, cfg, stage)
    lh = Lakehouse(spark, cfg)
    dump = {r["sample_key"]: r for r in lh.read("collected").select(
        "sample_key", "image_id", "source_is_consistent", "cot_response").collect()}
    selected = lh.read("selected").select(
        "sample_key", "reject_reason", "answer", "mfr_is_consistent", "source_is_consistent").collect()
    kept = {r["sample_key"] for r in selected if r["reject_reason"] is None}
    distilled = {r["sample_key"]: r["reject_reason"] for r in lh.read("distilled").select("sample_key", "reject_reason").collect()}
    dump_kept = [k for k, r in dump.items() if r["source_is_consistent"] is True and r["image_id"]]
    dump_rejected = [k for k, r in dump.items() if r["source_is_consistent"] is False]
    rebought = sum(distilled.get(k) == "pending_model" for k in dump_kept)
    cleaned = {r["sample_key"]: r["reject_reason"] for r in lh.read("cleaned").select("sample_key", "reject_reason").collect()}
    deliberate = {code: [k for k in dump_kept if cleaned.get(k) == code] for code in ("near_duplicate", "benchmark_overlap")}
    rest = [k for k in dump_kept if cleaned.get(k) not in deliberate]

    reached = [r for r in selected if r["source_is_consistent"] is not None and (r["answer"] or "").strip()]
    decided = [r for r in reached if r["mfr_is_consistent"] is not None]

    storage = Storage()
    files = [f for f in storage.list_files(str(out), ".jsonl") if "/mfr_sft/" in f or "/mfr_rl/" in f]
    lines = [line for f in files for line in storage.read_text(f).splitlines() if line]
    turns = [_untagged(json.loads(line)["messages"][1]["content"]) for line in lines]
    solutions = [_solution(r["cot_response"]) for r in dump.values() if r["cot_response"]]
    whole = sum(any(s and s in turn for s in solutions) for turn in turns)
    return {
        "fidelity.dump_kept_rows": float(len(dump_kept)),
        "fidelity.dump_kept_recall": sum(k in kept for k in dump_kept) / len(dump_kept) if dump_kept else 0.0,
        **{f"fidelity.dump_kept_removed.{code}": float(len(keys)) for code, keys in deliberate.items()},
        "fidelity.dump_kept_recall_less_deliberate": sum(k in kept for k in rest) / len(rest) if rest else 0.0,
        "fidelity.dump_rejected_rows": float(len(dump_rejected)),
        "fidelity.dump_rejected_kept": sum(k in kept for k in dump_rejected) / len(dump_rejected) if dump_rejected else 0.0,
        "fidelity.rebought": float(rebought),
        "fidelity.exported_records": float(len(turns)),
        "fidelity.export_whole_response": whole / len(turns) if turns else 0.0,
        "fidelity.verify_agreement":
            sum(r["mfr_is_consistent"] == r["source_is_consistent"] for r in decided) / len(decided) if decided else 0.0,
        "fidelity.verify_undecided_rate": (len(reached) - len(decided)) / len(reached) if reached else 0.0,
    }
