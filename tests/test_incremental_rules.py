"""Which case applies to a stage run (full, or reusing the stage's last run), decided on plain values."""

from __future__ import annotations

import json

from mfr.config import load_config
from mfr.dump.layout import DumpFile, subset_digests
from mfr.incremental import changed_sections, why_full
from mfr.lakehouse import code_version
from mfr.stages.registry import stage


def _last(cfg, **extra):
    row = {"run_id": "r1", "output_version": 3, "code_version": code_version(),
           "config_json": json.dumps(cfg.redacted()), "input_versions": {"collected": 2}}
    row.update(extra)
    return row


def test_a_run_reuses_its_last_one_only_with_the_same_code_stage_settings_and_tables():
    cfg = load_config()
    clean = stage("clean")
    last = _last(cfg)
    assert why_full(clean, cfg, last, {"collected": 5}, None, False) is None
    # settings another stage reads do not matter; the stage's own do, named
    assert why_full(clean, cfg.with_overrides(["selection.quality.ngram_freq=4"]), last, {"collected": 5}, None, False) is None
    assert why_full(clean, cfg.with_overrides(["cleaning.max_image_size=1024"]), last, {"collected": 5}, None, False) \
        == "settings changed since run r1: cleaning.max_image_size"
    assert why_full(clean, cfg, _last(cfg, code_version="0.0.1+old"), {"collected": 5}, None, False).startswith(
        "code changed since run r1 (0.0.1+old → ")
    assert why_full(clean, cfg, last, {"cleaned": 5}, None, False) == "reads other tables than run r1"
    assert why_full(clean, cfg, None, {"collected": 5}, None, False) == "no earlier succeeded clean run"
    assert why_full(clean, cfg, last, {"collected": 5}, None, True) == "--full"
    assert why_full(clean, cfg, last, {"collected": 5}, "r0", False) == "--from-run"
    assert why_full(clean, cfg.with_overrides(["runs.incremental=false"]), last, {"collected": 5}, None, False) \
        == "runs.incremental is false"
    # distill also reads which sources need no answer tag
    distill = stage("distill")
    changed = cfg.with_overrides(["selection.structure.no_answer_check_sources=[x]"])
    assert why_full(distill, changed, _last(cfg, input_versions={"cleaned": 1}), {"cleaned": 1}, None, False) \
        == "settings changed since run r1: selection.structure.no_answer_check_sources"


def test_changed_sections_names_keys_below_each_section():
    before = {"a": {"x": 1, "y": {"z": 1}}, "b": 2}
    assert changed_sections(before, {"a": {"x": 1, "y": {"z": 2}}, "b": 2}, ("a", "b")) == ["a.y"]
    assert changed_sections(before, {"a": {"x": 1, "y": {"z": 1}, "w": 0}, "b": 3}, ("a", "b")) == ["a.w", "b"]
    assert changed_sections(before, {"a": {"x": 2}}, ("a.x",)) == ["a.x"]


def test_a_subsets_digest_changes_with_any_of_its_files_size_time_or_columns_only():
    a = DumpFile("s", "/d/s/a.parquet", {"id": "int"}, 3, 100, 7)
    b = DumpFile("t", "/d/t/b.parquet", {"id": "int"}, 3, 100, 7)
    base = subset_digests([a, b])
    assert set(base) == {"s", "t"} and all(0 <= d < 2**52 for d in base.values())
    for changed in (DumpFile("s", a.path, a.columns, 3, 101, 7), DumpFile("s", a.path, a.columns, 3, 100, 8),
                    DumpFile("s", a.path, {"id": "string"}, 3, 100, 7), DumpFile("s", "/d/s/c.parquet", a.columns, 3, 100, 7)):
        now = subset_digests([changed, b])
        assert now["s"] != base["s"] and now["t"] == base["t"]
    assert subset_digests([a, DumpFile("s", "/d/s/c.parquet", {"id": "int"}, 1, 5, 5), b])["s"] != base["s"]


def test_the_change_feed_names_the_keys_whose_kept_content_differs_between_its_ends(spark):
    from mfr.incremental import feed_changes

    rows = [  # sample_key, reject_reason, value, change, commit version
        ("new", None, "a", "insert", 2),
        ("same", None, "a", "update_preimage", 2), ("same", None, "a", "update_postimage", 2),
        ("edited", None, "a", "update_preimage", 2), ("edited", None, "b", "update_postimage", 2),
        ("gone", None, "a", "delete", 3),
        ("came_and_went", None, "a", "insert", 2), ("came_and_went", None, "a", "delete", 3),
        ("now_rejected", None, "a", "update_preimage", 2), ("now_rejected", "why", "a", "update_postimage", 2),
        ("rewritten", None, "a", "delete", 2), ("rewritten", None, "a", "insert", 2),  # an overwrite keeps it
        ("back_and_forth", None, "a", "update_preimage", 2), ("back_and_forth", None, "b", "update_postimage", 2),
        ("back_and_forth", None, "b", "update_preimage", 3), ("back_and_forth", None, "a", "update_postimage", 3),
        ("null_moved", None, None, "update_preimage", 2), ("null_moved", None, "", "update_postimage", 2),
    ]
    feed = spark.createDataFrame(
        [(k, r, v, c, n, None) for k, r, v, c, n in rows],
        "sample_key string, reject_reason string, value string, _change_type string, _commit_version long, "
        "_commit_timestamp timestamp")
    changed = {r["sample_key"] for r in feed_changes(feed).collect()}
    assert changed == {"new", "edited", "gone", "now_rejected", "null_moved"}
