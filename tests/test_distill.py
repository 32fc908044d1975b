"""Stage 3 (distill) on Spark + Delta against the OpenAI-compatible test server."""

from __future__ import annotations

import json

import pytest
from pyspark.sql import functions as F

from mfr.lakehouse import Lakehouse
from mfr.runlog import RunLog
from mfr.runner import run_stage
from mfr.stages.distill import result_problem
from tests.openai_server import OpenAIServer, ServerSettings


@pytest.fixture
def collected(spark, make_cfg, synthetic_dump):
    cfg = make_cfg(f"collection.source={synthetic_dump}", "llm.progress_interval_s=1")
    run_stage(spark, cfg, "collect")
    return cfg


def _with_server(cfg, url, *extra):
    sets = []
    for p in ("cot", "caption"):
        sets += [f"distillation.{p}.client.api_base={url}", f"distillation.{p}.client.model={p}-model",
                 f"distillation.{p}.client.backoff_base_s=0.01", f"distillation.{p}.client.timeout_s=5"]
    return cfg.with_overrides(sets + list(extra))


def _needs(spark, cfg):
    rows = Lakehouse(spark, cfg).read("collected").where(F.col("reject_reason").isNull()).collect()
    cot = {r["sample_key"] for r in rows if result_problem("cot", r["cot_response"], 100)}
    cap = {r["sample_key"] for r in rows if r["image_id"] and result_problem("caption", r["caption"], 100)}
    return rows, cot, cap


def test_a_caption_is_valid_at_distill_by_the_bar_select_applies(make_cfg):
    """A caption select would reject (< selection.content.min_caption_words) is resampled at distill."""
    from types import SimpleNamespace

    from mfr.stages.distill import _purpose

    for sets, expected in (((), 100), (("selection.content.min_caption_words=120",), 120),
                           (("distillation.caption.min_words=30",), 30)):
        assert _purpose(SimpleNamespace(cfg=make_cfg(*sets)), "caption").min_words == expected
    assert result_problem("caption", " ".join(["word"] * 99), 100) == "too_short"
    assert result_problem("caption", " ".join(["word"] * 100), 100) is None


def test_without_endpoints_rows_needing_a_model_are_pending(spark, collected):
    rows, need_cot, need_cap = _needs(spark, collected)
    assert len(need_cot) >= 6 and len(need_cap) >= 2
    r = run_stage(spark, collected, "distill")
    assert r.rows_in == len(rows) == r.rows_kept + r.rows_rejected
    out = {x["sample_key"]: x for x in Lakehouse(spark, collected).read("distilled").collect()}
    pending = {k for k, x in out.items() if x["reject_reason"] == "pending_model"}
    assert pending == need_cot | need_cap
    some = out[sorted(need_cot)[0]]
    assert "distillation.cot.client.api_base" in some["reject_detail"]
    kept = [x for x in out.values() if x["reject_reason"] is None]
    assert kept and all(x["cot_origin"] == "dump" for x in kept)


@pytest.mark.slow  # faults and a rerun end to end; make test's shared pipeline distills through a teacher
def test_distill_with_faults_then_rerun_asks_nothing(spark, collected):
    _, need_cot, need_cap = _needs(spark, collected)
    with OpenAIServer(ServerSettings(faults={"http_500": 0.3, "reset": 0.1}, fault_attempts=1, seed=1)) as srv:
        cfg = _with_server(collected, srv.url)
        r = run_stage(spark, cfg, "distill")
        assert r.rows_rejected == 0
        first = srv.requests
        assert srv.stats()["duplicate_successes"] == 0
        bodies = list(srv.bodies)
        again = run_stage(spark, cfg, "distill")
        assert srv.requests == first  # finished rows: nothing asked again
    assert again.rows_kept == r.rows_kept
    lh = Lakehouse(spark, cfg)
    out = {x["sample_key"]: x for x in lh.read("distilled", r.output_version).collect()}
    for k in need_cot:
        x = out[k]
        assert x["cot_origin"] == "distilled" and x["cot_model"] == "cot-model" and result_problem("cot", x["cot_response"], 100) is None
        assert x["cot_prompt_version"].startswith("distill@") and x["cot_request_key"]
    for k in need_cap:
        assert out[k]["caption_origin"] == "distilled" and out[k]["caption_model"] == "caption-model"
    calls = lh.read("llm_calls")
    assert calls.where(F.col("status") == "ok").groupBy("request_key").count().where("count > 1").count() == 0
    assert calls.count() == len(need_cot) + len(need_cap)
    # the teacher sees the question and the image, never the caption
    captions = {x["caption"] for x in out.values() if x["caption"]}
    for body in bodies:
        content = body["messages"][0]["content"]
        text = " ".join(part.get("text", "") for part in content)
        assert not any(c in text for c in captions)
        if "<answer>" in text:
            assert body["chat_template_kwargs"] == {"enable_thinking": True} and body["n"] == 1
    assert any(part.get("type") == "image_url" and part["image_url"]["url"].startswith("data:image/jpeg;base64,")
               for b in bodies for part in b["messages"][0]["content"])


@pytest.mark.slow  # over a minute of its own: `make test-slow` (CI runs it)
def test_truncated_answers_are_never_accepted_and_a_later_run_retries(spark, collected):
    _, need_cot, need_cap = _needs(spark, collected)
    with OpenAIServer(ServerSettings(faults={"truncated": 1.0})) as srv:
        cfg = _with_server(collected, srv.url, "distillation.cot.max_resamples=2", "distillation.overwrite=false")
        r = run_stage(spark, cfg, "distill")
    lh = Lakehouse(spark, cfg)
    out = {x["sample_key"]: x for x in lh.read("distilled", r.output_version).collect()}
    assert {k for k, x in out.items() if x["reject_reason"] == "cot_truncated"} == need_cot
    seeds = lh.read("llm_calls").where(F.col("purpose") == "cot").groupBy("sample_key").agg(F.collect_set("sample_index").alias("i")).collect()
    assert all(sorted(x["i"]) == [0, 1, 2] for x in seeds)
    with OpenAIServer() as healthy:
        r2 = run_stage(spark, _with_server(collected, healthy.url), "distill")
        assert healthy.requests == len(need_cot) + len(need_cap)  # only the rejected rows, each once
    assert r2.rows_rejected == 0
    idx = lh.read("llm_calls").where((F.col("purpose") == "cot") & (F.col("finish_reason") == "stop")).select("sample_index").distinct().collect()
    assert [x["sample_index"] for x in idx] == [3]
    assert json.loads(lh.history("distilled").collect()[0]["userMetadata"])["run_id"] == r2.run_id


@pytest.mark.slow  # about a minute of its own: `make test-slow` (CI runs it)
def test_api_key_reaches_the_server_and_nothing_else(spark, collected, monkeypatch):
    secret = "sk-test-0123456789abcdefghij"
    monkeypatch.setenv("MFR_TEST_TEACHER_KEY", secret)
    with OpenAIServer() as srv:
        cfg = _with_server(collected, srv.url, "distillation.cot.client.api_key_env=MFR_TEST_TEACHER_KEY",
                           "distillation.caption.client.api_key_env=MFR_TEST_TEACHER_KEY")
        r = run_stage(spark, cfg, "distill")
        assert srv.authorizations == {f"Bearer {secret}"}
    lh = Lakehouse(spark, cfg)
    for table in ("runs", "llm_calls", "distilled"):
        dumped = json.dumps([x.asDict(recursive=True) for x in lh.read(table).collect()], default=str)
        assert secret not in dumped, table
    history = json.dumps([x.asDict(recursive=True) for x in lh.history("distilled").collect()], default=str)
    assert secret not in history
    assert "MFR_TEST_TEACHER_KEY" in RunLog(lh).get(r.run_id)["config_json"]
    redaction = spark.conf.get("spark.redaction.regex")
    import re

    assert re.search(redaction, "spark.executorEnv.MFR_TEACHER_API_KEY")
