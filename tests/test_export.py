"""Export for training: sharegpt records, LLaMA-Factory files, HF parquet + card, RL split, hub push."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pyspark.sql import functions as F

from mfr.export.card import quotas
from mfr.export.sharegpt import placeholder_count, sharegpt_record, split_cot
from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage

COT = "<think>I look at the figure and count carefully.</think>\n<answer>42</answer>"


def test_record_puts_exactly_one_image_tag_in_the_user_turn() -> None:
    rec, why = sharegpt_record("How many?", COT, "images/ab/ab.jpg")
    assert why is None and rec["messages"][0]["content"] == "<image>How many?"
    assert rec["messages"][1]["content"] == "<think>\nI look at the figure and count carefully.\n</think>\n\n<answer>42</answer>"
    assert rec["images"] == ["images/ab/ab.jpg"] and placeholder_count(rec) == 1
    rec, _ = sharegpt_record("Count the <image> dots.", COT, "x.jpg")
    assert rec["messages"][0]["content"] == "Count the <image> dots."


def test_stray_tags_in_model_text_are_neutralised() -> None:
    cot = "<think>The <image> shows 3 dots; another <image> tag.</think><answer>3 <image></answer>"
    rec, why = sharegpt_record("<image>How many?", cot, "x.jpg", caption="A <image> of dots.", with_caption=True)
    assert why is None and placeholder_count(rec) == 1
    assert "[image]" in rec["messages"][1]["content"] and rec["messages"][1]["content"].startswith("<think>\nA [image] of dots.")


@pytest.mark.parametrize(
    "question, cot, path, reason",
    [
        ("<image>A <image> B", COT, "x.jpg", "image_tag_count"),
        ("<image>", COT, "x.jpg", "question_missing"),
        ("Q", "<think>a</think><think>b</think><answer>1</answer>", "x.jpg", "cot_unusable"),
        ("Q", "</think>reversed<think><answer>1</answer>", "x.jpg", "cot_unusable"),
        ("Q", "<think>nothing after</think>", "x.jpg", "cot_unusable"),
        ("Q", COT, None, "image_missing"),
    ],
)
def test_broken_rows_are_rejected_with_a_reason(question, cot, path, reason) -> None:
    assert sharegpt_record(question, cot, path) == (None, reason)


def test_the_written_solution_is_exported_whole() -> None:
    solution = ("The figure has three rows of 14 dots, so the count is 3 × 14 = 42.\n\n"
                "Thus, the final answer is <answer>42</answer>.")
    cot = f"<think>I count the rows first.</think>\n\n{solution}"
    rec, _ = sharegpt_record("Q", cot, "x.jpg")
    assert rec["messages"][1]["content"] == f"<think>\nI count the rows first.\n</think>\n\n{solution}"
    rec, _ = sharegpt_record("Q", cot, "x.jpg", thinking=False)
    assert rec["messages"][1]["content"] == solution  # non-thinking: the written solution, not just "42"
    explanatory = "<think>Why does ice float?</think>\nIce is less dense than water because its lattice is open."
    assert split_cot(explanatory) == ("Why does ice float?", "Ice is less dense than water because its lattice is open.")


def test_real_dump_responses_keep_their_written_solution(real_sample) -> None:
    import pyarrow.parquet as pq

    from mfr.text.cot import parse_trace

    checked = 0
    for shard in sorted(real_sample.glob("*/*.parquet")):
        for row in pq.read_table(shard, columns=["question", "qwen3vl_235b_thinking_response"]).to_pylist():
            trace = parse_trace(row["qwen3vl_235b_thinking_response"])
            if trace.problem or not trace.solution.strip() or not trace.think.strip():
                continue
            rec, why = sharegpt_record(row["question"].replace("<image>", ""), row["qwen3vl_235b_thinking_response"], "x.jpg")
            assert why is None
            written = trace.solution.strip().replace("<image>", "[image]")
            assert rec["messages"][1]["content"].endswith(written)
            checked += 1
    assert checked >= 50


def test_quotas_keep_proportions_and_sum() -> None:
    q = quotas({"a": 50, "b": 30, "c": 20}, 10)
    assert q == {"a": 5, "b": 3, "c": 2}
    q = quotas({"a": 1, "b": 1, "c": 1}, 2)
    assert sum(q.values()) == 2 and set(q.values()) <= {0, 1}
    assert sum(quotas({"a": 3}, 10).values()) == 3


def _tree(root: Path) -> dict[str, str]:
    """Every file's hash; the recipe is read with its (folder-specific) dataset_dir line dropped."""
    def digest(p: Path) -> str:
        data = p.read_bytes()
        if p.name == "mfr_8b.yaml":
            data = b"\n".join(x for x in data.splitlines() if not x.startswith(b"dataset_dir:"))
        return hashlib.sha256(data).hexdigest()

    return {p.relative_to(root).as_posix(): digest(p) for p in sorted(root.rglob("*")) if p.is_file() and p.name != "EXPORT.json"}


def test_export_round_trip(spark, pipeline_cfg, tmp_path):
    out = tmp_path / "export"
    cfg = pipeline_cfg.with_overrides([f"export.out={out}", "export.rl.rows=10", "export.shard_rows=25"])
    r = run_stage(spark, cfg, "export")
    lh = Lakehouse(spark, cfg)
    selected = lh.read("selected").where("reject_reason IS NULL")
    n_sel = selected.count()
    assert r.rows_in == n_sel == r.rows_kept + r.rows_rejected
    manifest = lh.read("exported", r.output_version)
    splits = {x["split"]: x["count"] for x in manifest.groupBy("split").count().collect()}
    assert splits.get("rl") == 10 and splits.get("sft", 0) + 10 == r.rows_kept
    # LLaMA-Factory files
    lf = out / "llamafactory"
    info = json.loads((lf / "dataset_info.json").read_text())
    assert info["mfr_sft"]["formatting"] == "sharegpt" and info["mfr_sft"]["columns"] == {"messages": "messages", "images": "images"}
    records = [json.loads(line) for f in sorted((lf / "mfr_sft").glob("*.jsonl")) for line in f.read_text().splitlines()]
    rl = [json.loads(line) for f in sorted((lf / "mfr_rl").glob("*.jsonl")) for line in f.read_text().splitlines()]
    assert len(records) == splits["sft"] and len(rl) == 10
    assert len(list((lf / "mfr_sft").glob("*.jsonl"))) > 1  # sharded
    for rec in records + rl:
        assert placeholder_count(rec) == len(rec["images"]) == 1
        assert (lf / rec["images"][0]).is_file()
        assert rec["messages"][1]["content"].startswith("<think>")
    # the dump-shaped teacher's traces passed every check and are exported whole: thinking + written solution
    distilled = selected.where("cot_origin = 'distilled'").count()
    teacher = [rec["messages"][1]["content"] for rec in records + rl if "Okay, let me look at the figure first." in rec["messages"][1]["content"]]
    assert distilled >= 3 and len(teacher) == distilled
    assert all("</think>" in t and "### Phase 3: Rigorous Solution Execution" in t.split("</think>")[1]
               and t.rstrip().endswith("</answer>.") for t in teacher)
    assert "dataset_dir: " + str(lf.resolve()) in (lf / "mfr_8b.yaml").read_text()
    # HF dataset: loads with datasets and the images decode
    import datasets

    files = sorted(str(p) for p in (out / "hf" / "data").glob("train-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files={"train": files}, split="train")
    assert len(ds) == splits["sft"] and isinstance(ds.features["image"], datasets.Image)
    img = ds[0]["image"]
    assert img.size[0] > 0 and ds[0]["qwen3vl_235b_thinking_response"].startswith("<think>")
    card = (out / "hf" / "README.md").read_text()
    assert "| **total** | " + str(splits["sft"]) + " | 10 |" in card and "split: rl" in card
    # the same version with the same settings is not exported again while the folder holds it; a run told to
    # recompute refuses the non-empty folder; elsewhere the same version gives the same files
    before = _tree(out)
    skipped = run_stage(spark, cfg, "export")
    assert skipped.mode.startswith("skip") and not skipped.wrote and _tree(out) == before
    with pytest.raises(FileExistsError, match="export.overwrite"):
        run_stage(spark, cfg, "export", full=True)
    again = run_stage(spark, cfg.with_overrides([f"export.out={tmp_path / 'again'}"]), "export")
    assert _tree(out) == _tree(tmp_path / "again")
    assert again.rows_kept == r.rows_kept


@pytest.mark.slow  # over a minute of its own: `make test-slow` (CI runs it)
def test_export_subsets_versions_and_stray_tags(spark, pipeline_cfg, tmp_path):
    lh = Lakehouse(spark, pipeline_cfg)
    v0 = lh.current_version("selected")
    hard = run_stage(spark, pipeline_cfg.with_overrides([f"export.out={tmp_path / 'hard'}", "export.subset=hardest",
                                                         "export.formats=[llamafactory]", f"export.table_version={v0}"]), "export")
    n_hardest = lh.read("selected", v0).where("reject_reason IS NULL AND pass_rate = 0").count()
    assert hard.rows_in == n_hardest and not (tmp_path / "hard" / "hf").exists()
    # by select run: the version that run wrote, whatever came after
    select_run = RunLog(lh).last_succeeded("select")
    by_run = run_stage(spark, pipeline_cfg.with_overrides([f"export.out={tmp_path / 'byrun'}", f"export.select_run={select_run['run_id']}",
                                                           "export.formats=[llamafactory]", "export.thinking=false"]), "export")
    assert RunLog(Lakehouse(spark, pipeline_cfg)).get(by_run.run_id)["input_versions"] == {"selected": select_run["output_version"]}
    first = json.loads(next((tmp_path / "byrun" / "llamafactory" / "mfr_sft").glob("*.jsonl")).read_text().splitlines()[0])
    assert "<think>" not in first["messages"][1]["content"]
    assert "template: qwen3_vl_nothink" in (tmp_path / "byrun" / "llamafactory" / "mfr_8b.yaml").read_text()
    with pytest.raises(ValueError, match="export.subset"):
        run_stage(spark, pipeline_cfg.with_overrides([f"export.out={tmp_path / 'x'}", "export.subset=easy"]), "export")


@pytest.mark.slow  # moved out of `make test` to keep it under 15 minutes on CI; `make test-slow` runs it
def test_push_to_hub_stand_in(spark, pipeline_cfg, tmp_path, monkeypatch):
    from tests.hub_standin import HubStandIn, private_repo

    monkeypatch.setenv("MFR_TEST_HF_TOKEN", "hf_secret_test_token")
    with HubStandIn({}) as hub:
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)  # read at import time, so patched
        cfg = pipeline_cfg.with_overrides([
            f"export.out={tmp_path / 'pushed'}", "export.formats=[hf]", "export.hf.repo_id=me/mmfr-test",
            "export.hf.token_env=MFR_TEST_HF_TOKEN", f"export.hf.endpoint={hub.url}",
        ])
        r = run_stage(spark, cfg, "export")
        pushed = hub.uploads["me/mmfr-test"]
    local = {p.relative_to(tmp_path / "pushed" / "hf").as_posix(): p.read_bytes()
             for p in (tmp_path / "pushed" / "hf").rglob("*") if p.is_file()}
    assert pushed == local and "README.md" in pushed
    assert hub.created and hub.created[0]["type"] == "dataset" and private_repo(hub.created[0])
    assert all(t == "Bearer hf_secret_test_token" for t in hub.tokens) and hub.validated
    assert r.metrics["export.pushed"] == 1.0
    assert "hf_secret" not in json.dumps(RunLog(Lakehouse(spark, cfg)).get(r.run_id), default=str)


def test_the_training_recipe_carries_the_seeds_values() -> None:
    import yaml

    from mfr.resources import data_dir

    recipe = yaml.safe_load((data_dir("conf") / "llamafactory" / "mfr_8b.yaml").read_text())
    seed = {  # train/config/mfr_8b.yaml of the seed, as ../shared/SEED-FACTS.md states it
        "model_name_or_path": "Qwen/Qwen3-VL-8B-Instruct", "image_max_pixels": 589824, "image_min_pixels": 1024,
        "video_max_pixels": 16384, "trust_remote_code": True, "stage": "sft", "finetuning_type": "full",
        "freeze_vision_tower": True, "freeze_multi_modal_projector": True, "freeze_language_model": False,
        "template": "qwen3_vl", "packing": True, "cutoff_len": 32768, "max_samples": 10000000,
        "preprocessing_num_workers": 32, "dataloader_num_workers": 4, "logging_steps": 10, "save_steps": 10000000,
        "plot_loss": True, "overwrite_output_dir": True, "save_only_model": True, "report_to": "none",
        "per_device_train_batch_size": 1, "gradient_accumulation_steps": 4, "learning_rate": 1.0e-5,
        "num_train_epochs": 3.0, "lr_scheduler_type": "cosine", "warmup_ratio": 0.1, "bf16": True,
        "ddp_timeout": 1800000000, "flash_attn": "fa2", "seed": 42, "enable_liger_kernel": True,
        "gradient_checkpointing": True,
    }
    assert {k: recipe.get(k) for k in seed} == seed
    assert "z2" in recipe["deepspeed"]
