from pathlib import Path

import pytest

from mfr.config import ConfigError, defaults, load_config, parse_override

REPO = Path(__file__).resolve().parents[1]


def test_defaults_carry_the_keys_other_stages_rely_on():
    d = defaults()
    assert d["lakehouse"]["schema"] == "mfr"
    assert d["collection"]["max_samples"] is None
    assert d["distillation"]["cot"]["client"]["api_key_env"] is None
    assert d["selection"]["content"]["min_response_words"] == 200
    assert d["selection"]["quality"]["ngram_n"] == 50


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
