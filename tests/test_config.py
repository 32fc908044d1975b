from pathlib import Path

import pytest

from mfr.config import ConfigError, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


def test_default_selection_applies_the_seeds_thresholds():
    """The seed's config.yaml: responses of 200 words, captions of 100, a 50-gram 3 times, the answer tag
    not asked of ai2d, LLaVA-CoT and visualwebinstruct (values from the seed, not from mfr's schema)."""
    from mfr.filters import SelectionRules, content_problem, structure_problem
    from mfr.text.repetition import repetition_problem

    rules = SelectionRules.from_config(load_config())
    trace = "<think>" + " ".join(f"w{i}" for i in range(300)) + "</think><answer>1</answer>"
    caption = " ".join(["c"] * 100)
    assert content_problem(trace, caption, rules) is None
    assert content_problem(" ".join(["w"] * 199), caption, rules) == "cot_too_short"
    assert content_problem(trace, " ".join(["c"] * 99), rules) == "caption_too_short"
    assert content_problem(trace + " [ERROR]", caption, rules) == "response_error"
    untagged = "<think>reasoning</think>The answer is 1."
    for source in ("FineVision-ai2d_merged", "LLaVA-CoT", "FineVision-visualwebinstruct(filtered)"):
        assert structure_problem(untagged, source, rules) is None, source
    assert structure_problem(untagged, "BMMR", rules) == "answer_missing"
    gram = " ".join(f"g{i}" for i in range(50))
    fresh = " ".join(f"x{i}" for i in range(60))
    n, freq = rules.ngram_n, rules.ngram_freq
    assert repetition_problem(f"<think>{gram} {fresh} {gram} {fresh} {gram}</think>", n, freq) == "ngram_repetition"
    assert repetition_problem(f"<think>{gram} {fresh} {gram}</think>", n, freq) is None
    short = " ".join(gram.split()[:49])  # a 49-gram three times, apart each time: no 50-gram repeats
    assert repetition_problem("<think>" + " ".join(f"{short} sep{k}" for k in range(3)) + "</think>", n, freq) is None


def test_defaults_need_no_endpoint_and_cap_nothing():
    """A fresh config runs every stage without a model (rows wait as pending_model) over the whole dump."""
    cfg = load_config()
    assert cfg.get("collection.max_samples") is None and cfg.get("distillation.cot.client.api_base") is None
    assert cfg.get("distillation.cot.client.api_key_env") is None  # no secret is ever looked up by default


@pytest.mark.parametrize("name", ["local.yaml", "cluster.example.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "conf" / name)
    assert cfg.files == (str(REPO / "conf" / name),)


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("collection:\n  sourse: x\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*collection\.sourse"):
        load_config(p)


def test_wrong_type_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("collection:\n  max_samples: lots\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'collection\.max_samples' must be int or null"):
        load_config(p)


def test_section_given_a_scalar_is_an_error(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("collection: 3\n")
    with pytest.raises(ConfigError, match="collection"):
        load_config(p)


def test_secret_in_yaml_is_refused_with_a_hint(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("distillation:\n  cot:\n    client:\n      api_key: sk-123\n")
    with pytest.raises(ConfigError, match="api_key_env"):
        load_config(p)


def test_overrides_parse_lists_nulls_numbers():
    cfg = load_config(overrides=[
        "collection.subsets=[BMMR, Euclid30K]",
        "collection.max_samples=100",
        "selection.difficulty.threshold=null",
        "distillation.cot.temperature=1",
        "distillation.cot.client.api_base=[http://a/v1, http://b/v1]",
        "collection.source=s3://bucket/dump",
    ])
    assert cfg.get("collection.subsets") == ["BMMR", "Euclid30K"]
    assert cfg.get("collection.max_samples") == 100
    assert cfg.get("selection.difficulty.threshold") is None
    assert cfg.get("distillation.cot.temperature") == 1.0
    assert cfg.get("distillation.cot.client.api_base") == ["http://a/v1", "http://b/v1"]
    assert cfg.get("collection.source") == "s3://bucket/dump"


def test_override_errors_name_the_override():
    with pytest.raises(ConfigError, match=r"--set collection.nope=1.*unknown key 'collection.nope'"):
        load_config(overrides=["collection.nope=1"])
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("justakey")
    with pytest.raises(ConfigError, match="must be bool"):
        load_config(overrides=["distillation.overwrite=maybe"])


def test_hash_is_stable_and_changes_with_content():
    a, b = load_config(), load_config()
    assert a.hash == b.hash
    assert load_config(overrides=["collection.max_samples=5"]).hash != a.hash


def test_redaction_masks_secret_looking_values_only():
    cfg = load_config(overrides=["spark.conf={fs.s3a.secret.key: abc, spark.hadoop.hf_token: xyz, x: 1}"])
    red = cfg.redacted()
    assert red["spark"]["conf"]["fs.s3a.secret.key"] == "***"
    assert red["spark"]["conf"]["spark.hadoop.hf_token"] == "***"
    assert red["spark"]["conf"]["x"] == 1
    assert red["distillation"]["cot"]["max_tokens"] == 16384  # not a secret
    assert cfg.get("spark.conf")["fs.s3a.secret.key"] == "abc"  # the live config keeps it


def test_typed_settings_mirror_the_schema_and_carry_the_values() -> None:
    from mfr.config import SCHEMA, Spec
    from mfr.settings import Settings, section_keys

    def keys(node):
        return {k: None if isinstance(v, Spec) else keys(v) for k, v in node.items()}

    assert section_keys(Settings) == keys(SCHEMA)  # no key without a typed field, no field without a key
    cfg = load_config(overrides=["selection.difficulty.threshold=0.5", "distillation.cot.client.api_base=[http://a/v1, http://b/v1]"])
    s = cfg.settings
    assert s.selection.difficulty.threshold == 0.5 and s.distillation.cot.client.api_base == ["http://a/v1", "http://b/v1"]
    assert s.cleaning.max_image_size == 2048 and s.distillation.cot.client.max_concurrency == 64
    assert cfg.settings is s  # built once per Config


SEED_CONFIG = """\
num_proc: 8
collection:
  dataset_id: OpenDataArena/MMFineReason-Full-2.3M-Qwen3-VL-235B-Thinking
  subsets: [BMMR, Euclid30K]
  cache_dir: null
cleaning:
  max_image_size: 2048
  clean_images: false
  llm_client: {type: vllm, api_base: "http://localhost:8000/v1", model: Qwen3-30B-A3B-Thinking, api_key: ""}
distillation:
  cot:
    client: {type: vllm, api_base: "http://localhost:8002/v1", model: Qwen3-VL-235B-A22B-Thinking, api_key: "sk-abc"}
    temperature: 1.0
    top_p: 0.95
    max_tokens: 16384
    thinking: true
  caption:
    client: {type: vllm, api_base: "http://localhost:8001/v1", model: Qwen3-VL-235B-A22B-Instruct, api_key: ""}
    temperature: 0.7
    top_p: 0.9
    max_tokens: 8192
selection:
  content_filter: {min_response_words: 250, min_caption_words: 120, error_keyword: "[ERR]"}
  structure_filter:
    no_answer_check_datasets: [LLaVA-CoT]
  quality_filter: {ngram_n: 40, ngram_freq: 4, consistency: false}
  difficulty_filter:
    threshold: 0.5
    num_samples: 8
    client: {type: vllm, api_base: "http://localhost:8003/v1", model: Qwen3-VL-4B-Thinking, api_key: ""}
  made_up_filter: {x: 1}
"""


def test_the_seed_config_imports_every_key_and_names_what_it_drops(tmp_path, capsys):
    from mfr.cli import main

    seed = tmp_path / "config.yaml"
    seed.write_text(SEED_CONFIG)
    with pytest.raises(ConfigError, match=r"unknown key 'num_proc'.*mfr config import"):
        load_config(seed)
    assert main(["config", "import", str(seed)]) == 0
    out, err = capsys.readouterr()
    mine = tmp_path / "mine.yaml"
    mine.write_text(out)
    s = load_config(mine).settings
    assert s.collection.source == "hf://datasets/OpenDataArena/MMFineReason-Full-2.3M-Qwen3-VL-235B-Thinking"
    assert s.collection.subsets == ["BMMR", "Euclid30K"] and s.cleaning.clean_images is False
    assert (s.cleaning.llm_client.api_base, s.cleaning.llm_client.model) == ("http://localhost:8000/v1", "Qwen3-30B-A3B-Thinking")
    assert s.distillation.cot.client.api_key_env == "MFR_COT_API_KEY" and "sk-abc" not in out + err
    assert (s.distillation.caption.temperature, s.distillation.caption.top_p, s.distillation.caption.max_tokens) == (0.7, 0.9, 8192)
    assert (s.selection.content.min_response_words, s.selection.content.min_caption_words,
            s.selection.content.error_keyword) == (250, 120, "[ERR]")
    assert s.selection.structure.no_answer_check_sources == ["LLaVA-CoT"]
    assert (s.selection.quality.ngram_n, s.selection.quality.ngram_freq, s.selection.quality.consistency) == (40, 4, False)
    assert (s.selection.difficulty.threshold, s.selection.difficulty.num_samples) == (0.5, 8)
    assert s.selection.difficulty.client.model == "Qwen3-VL-4B-Thinking"
    for dropped in ("num_proc", "cleaning.llm_client.type", "distillation.cot.client.api_key", "selection.made_up_filter.x"):
        assert f"# - {dropped}" in out and f"mfr config import: {dropped}" in err
