"""Incremental runs: a lakehouse brought up to date by incremental runs equals one built from scratch.

One lakehouse runs every stage on a synthetic dump, the dump then changes in each way a dump changes (a new
subset, one of whose rows is an exact copy of an older row with a smaller key; a question edited; rows
removed), and every stage runs again: incrementally, computing only what changed. A second lakehouse runs
every stage once on the final dump. Their tables must hold the same rows (run ids aside), and a third pass
with nothing new must compute nothing and commit nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from mfr.sample.synthetic import write_sample
from tests.conftest import schema_cfg
from tests.openai_server import OpenAIServer, dump_shaped_responder, gold_answers

pytestmark = pytest.mark.slow

STAGES = ("collect", "clean", "distill", "select", "export")
TABLES = {"collect": "collected", "clean": "cleaned", "distill": "distilled", "select": "selected"}


def _only(folder: Path) -> Path:
    (path,) = sorted(folder.glob("*.parquet"))
    return path


def _change_dump(dump: Path, extra: Path) -> dict[str, object]:
    """Change ``dump`` in place: a new subset (rows of another seed under new keys, plus an exact copy of a
    chart row whose key sorts first), one geometry question edited, two grid rows removed; the charts'
    file stays as it was."""
    copied = pq.read_table(_only(dump / "synth-charts")).slice(0, 1)
    new = pq.read_table(_only(extra / "synth-charts"))
    new = new.set_column(new.schema.get_field_index("id"), "id", pc.add(new["id"], 1_000_000))
    added = pa.concat_tables([new, copied.cast(new.schema)])
    added = added.set_column(added.schema.get_field_index("source"), "source", pa.array(["synth-added"] * len(added)))
    (dump / "synth-added").mkdir()
    pq.write_table(added, dump / "synth-added" / "train-00000-of-00001.parquet")

    geometry_path = _only(dump / "synth-geometry")
    geometry = pq.read_table(geometry_path).to_pylist()
    geometry[0]["question"] = geometry[0]["question"] + " Give the answer in the same units."
    pq.write_table(pa.Table.from_pylist(geometry, schema=pq.read_schema(geometry_path)), geometry_path)

    grids_path = _only(dump / "synth-grids")
    grids = pq.read_table(grids_path)
    removed = [f"synth-grids:{i}" for i in grids["id"].to_pylist()[-2:]]  # the last: no other row moves
    pq.write_table(grids.slice(0, len(grids) - 2), grids_path)
    return {"added": [f"synth-added:{i}" for i in added["id"].to_pylist()], "edited": f"synth-geometry:{geometry[0]['id']}", "removed": removed,
            "copy_of": f"synth-charts:{copied['id'][0].as_py()}", "copy": f"synth-added:{copied['id'][0].as_py()}"}


def _rows(lh: Lakehouse, table: str, version: int) -> list[str]:
    df = lh.read(table, version)
    cols = sorted(c for c in df.columns if c != "run_id")
    return sorted(r[0] for r in df.select(F.to_json(F.struct(*cols))).collect())


def _run_all(spark, cfg, export_dir: Path | None) -> dict:
    """Every stage in order (export only given a folder)."""
    out = {}
    for stage in STAGES if export_dir else STAGES[:-1]:
        extra = [f"export.out={export_dir}", "export.overwrite=true"] if stage == "export" else []
        out[stage] = run_stage(spark, cfg.with_overrides(extra), stage)
    return out


def test_incremental_runs_leave_the_tables_a_run_from_scratch_writes(spark, warehouse, tmp_path):
    dump, extra = tmp_path / "dump", tmp_path / "extra"
    write_sample(dump, 45, seed=0)
    duplicated = {p.parent.name for p in dump.glob("*/*.parquet")
                  if len(set(ids := pq.read_table(p)["id"].to_pylist())) < len(ids)}
    write_sample(extra, 12, seed=1)
    gold = gold_answers(dump)
    with OpenAIServer(responder=lambda body, i, words: dump_shaped_responder(body, i, words, gold)) as teacher:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"), ("backoff_base_s", 0.01))]
        grown = schema_cfg(warehouse, "incr_grown", f"collection.source={dump}", *sets)
        first = _run_all(spark, grown, tmp_path / "export")
        changes = _change_dump(dump, extra)
        gold.update(gold_answers(dump))
        second = _run_all(spark, grown, tmp_path / "export")
        scratch_cfg = schema_cfg(warehouse, "incr_scratch", f"collection.source={dump}", *sets)
        scratch = _run_all(spark, scratch_cfg, None)
        asked = teacher.stats()["requests"]
        third = _run_all(spark, grown, tmp_path / "export")
        asked_third = teacher.stats()["requests"] - asked

    lh, lh_scratch = Lakehouse(spark, grown), Lakehouse(spark, scratch_cfg)
    # the second pass: each stage reused its last run and computed only what changed
    assert all(r.mode == "full" or r.mode.startswith("full") for r in first.values())
    for stage in ("collect", "clean", "distill", "select"):
        assert second[stage].mode.startswith("incremental"), (stage, second[stage].mode)
    assert second["export"].mode.startswith("full: inputs changed")
    # the charts' file is unchanged: carried, unless one of its rows is a duplicate key (decided across files)
    assert second["collect"].metrics["incremental.subsets_read"] == 3 + int("synth-charts" in duplicated)
    # clean computed the added rows and the edited one (those collect kept); the removed rows left its table
    collected = lh.read("collected", second["collect"].output_version).where(F.col("reject_reason").isNull())
    changed_keys = {r["sample_key"] for r in collected.select("sample_key").collect()} & {*changes["added"], changes["edited"]}
    assert second["clean"].metrics["incremental.rows_processed"] == len(changed_keys) > 0
    assert second["clean"].metrics["incremental.rows_removed"] == 2
    # the changed rows came from the input's change data feed (stage tables record it), not two whole reads
    assert all(second[s].metrics["incremental.input_from_change_feed"] == 1 for s in ("clean", "distill", "select"))
    cleaned = {r["sample_key"]: r for r in lh.read("cleaned", second["clean"].output_version).collect()}
    # the copy's key sorts first, so the older row it copies is now the duplicate (a carried row changed)
    assert cleaned[changes["copy"]]["reject_reason"] is None
    assert cleaned[changes["copy_of"]]["reject_reason"] == "duplicate_sample"
    assert cleaned[changes["copy_of"]]["reject_detail"] == f"duplicate of {changes['copy']}"
    assert not set(changes["removed"]) & set(cleaned)
    # distill asked only for rows new to it: the edited and added rows (the copy's twin left its input)
    assert 0 < second["distill"].metrics["incremental.rows_processed"] <= len(changed_keys)

    # the same tables as a run from scratch on the final dump, row for row
    for stage, table in TABLES.items():
        grown_rows = _rows(lh, table, second[stage].output_version)
        scratch_rows = _rows(lh_scratch, table, scratch[stage].output_version)
        assert grown_rows == scratch_rows, f"{table}: {len(set(grown_rows) ^ set(scratch_rows))} rows differ"
        # unchanged rows were not rewritten: a MERGE of the rows that differ (an append where all are new)
        history = lh.history(table).where(F.col("version") == second[stage].output_version).collect()[0]
        assert history["operation"] == "MERGE" or (history["operation"] == "WRITE"
                                                   and history["operationParameters"]["mode"] == "Append"), history

    # nothing new: every stage computes nothing and commits nothing
    for stage in STAGES:
        assert third[stage].mode.startswith("skip"), (stage, third[stage].mode)
        assert not third[stage].wrote and third[stage].output_version == second[stage].output_version
        assert third[stage].metrics["incremental.rows_processed"] == 0
    for table in TABLES.values():
        assert lh.current_version(table) == second[[s for s, t in TABLES.items() if t == table][0]].output_version
    # a version of a table made outside a stage run (a hand edit, a killed run's commit): the next run of its
    # stage recomputes everything (the rules on plain values: tests/test_incremental_rules.py)
    spark.sql(f"ALTER TABLE {lh.name('selected')} SET TBLPROPERTIES ('mfr.test.touched' = 'yes')")
    again = run_stage(spark, grown, "select")
    assert again.mode.startswith("full: ") and "not run" in again.mode and again.wrote
    assert _rows(lh, "selected", again.output_version) == _rows(lh_scratch, "selected", scratch["select"].output_version)
    assert asked > 0 and asked_third == 0  # nothing new: the teacher was not asked


def test_rows_select_rejects_for_a_chosen_reason_are_asked_again_once_at_the_next_sample_index(spark, warehouse, tmp_path):
    dump = tmp_path / "dump"
    write_sample(dump, 24, seed=3)
    gold = gold_answers(dump)

    def responder(body, i, words):
        """The teacher's first sample is wrong for every question; later ones give the gold answer."""
        if body.get("seed") == 0 and "final answer is <answer>" in json.dumps(body.get("messages", [])):
            return dump_shaped_responder(body, i, words, {q: "wrong-0" for q in gold})
        return dump_shaped_responder(body, i, words, gold)

    with OpenAIServer(responder=responder) as teacher:
        sets = [f"distillation.{p}.client.{k}={v}" for p in ("cot", "caption")
                for k, v in (("api_base", teacher.url), ("model", f"{p}-model"), ("backoff_base_s", 0.01))]
        cfg = schema_cfg(warehouse, "regenerate", f"collection.source={dump}", "distillation.overwrite=true", *sets,
                         "distillation.cot.regenerate_on=[answer_mismatch]", "distillation.cot.max_regenerations=1")
        lh = Lakehouse(spark, cfg)
        for stage in ("collect", "clean", "distill", "select"):
            first = run_stage(spark, cfg, stage)
        mismatched = {r["sample_key"] for r in lh.read("selected", first.output_version)
                      .where(F.col("reject_reason") == "answer_mismatch").select("sample_key").collect()}
        asked = teacher.stats()["requests"]
        distilled = run_stage(spark, cfg, "distill")
        asked_again = teacher.stats()["requests"] - asked
        judged = run_stage(spark, cfg, "select")
        third = run_stage(spark, cfg, "distill")
    assert mismatched and distilled.metrics["regenerate.rows"] == len(mismatched)
    assert asked_again == len(mismatched)  # one CoT each, nothing else asked
    assert judged.mode.startswith("incremental") and judged.metrics["incremental.rows_processed"] == len(mismatched)
    assert judged.metrics["regenerate.judged"] == len(mismatched)
    kept = {r["sample_key"] for r in lh.read("selected", judged.output_version).where(F.col("reject_reason").isNull())
            .select("sample_key").collect()}
    assert judged.metrics["regenerate.kept"] == len(mismatched & kept) > 0
    rows = {r["sample_key"]: r for r in lh.read("distilled", distilled.output_version).collect()}
    assert all(rows[k]["cot_regenerations"] == 1 and rows[k]["cot_min_index"] == 1 for k in mismatched)
    assert all(rows[k]["cot_regenerations"] is None for k in set(rows) - mismatched)
    # at the cap: nothing is asked again, whatever select said
    assert third.metrics.get("regenerate.rows", 0) == 0 and third.mode.startswith("skip")
    calls = lh.read("llm_calls").where(F.col("purpose") == "cot").groupBy("sample_key", "sample_index").count()
    assert calls.where(F.col("count") > 1).count() == 0  # no sample index asked twice
    # the report says it too, per source
    from mfr.report import gather

    data = gather(spark, cfg)
    assert sum(r[1] for r in data.regenerated) == len(mismatched)
    assert sum(r[2] for r in data.regenerated) == judged.metrics["regenerate.kept"]
