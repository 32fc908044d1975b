"""Pipeline configuration: YAML files under conf/, validated against one schema.

The schema below is the single source of truth for every key, its type and its default. A YAML file
or a ``--set dotted.key=value`` override naming an unknown key, or giving a value of the wrong type,
is an error that names the key and the file. Secrets are never read from YAML: a client names the
environment variable that holds its key (``api_key_env``).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # pragma: no cover
    from mfr.settings import Settings


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and the file."""


@dataclass(frozen=True)
class Spec:
    """Type and default of one leaf key. ``kinds`` are names from ``_CHECKS``."""

    kinds: tuple[str, ...]
    default: Any = None
    doc: str = ""


def _s(kinds: str, default: Any = None, doc: str = "") -> Spec:
    return Spec(tuple(k.strip() for k in kinds.split("|")), default, doc)


def _client(model: str | None, doc: str) -> dict[str, Any]:
    """Keys shared by every OpenAI-compatible client section."""
    return {
        "api_base": _s("str|list[str]|null", None, f"{doc}: one URL or a list of replica URLs (…/v1)"),
        "model": _s("str|null", model, "served model name"),
        "api_key_env": _s("str|null", None, "environment variable that holds the API key"),
        "max_concurrency": _s("int", 64, "requests in flight per endpoint across all tasks"),
        "timeout_s": _s("float", 600.0, "per-request timeout"),
        "max_attempts": _s("int", 6, "attempts per request before the error is recorded"),
        "connect_timeout_s": _s("float", 10.0, "TCP connect timeout"),
        "backoff_base_s": _s("float", 0.5, "first retry waits up to this (full jitter, doubling)"),
        "backoff_max_s": _s("float", 30.0, "longest wait between attempts"),
        "breaker_cooldown_s": _s("float", 30.0, "how long a failing endpoint is skipped before a probe"),
        "requests_per_s": _s("float|null", None, "cap on requests per second across all tasks (hosted endpoints)"),
        "tokens_per_min": _s("float|null", None, "cap on prompt + completion tokens per minute across all tasks"),
        "response_format": _s("map|null", None, "passed as the request's response_format (e.g. a JSON schema)"),
        "extra_body": _s("map|null", None, "merged into every request body (vLLM's guided_json, top_k, …)"),
    }


SCHEMA: dict[str, Any] = {
    "lakehouse": {
        "catalog": _s("str|null", None, "catalog for three-part names (Unity Catalog); null = session default"),
        "schema": _s("str", "mfr", "schema (database) holding every stage table"),
        "warehouse": _s("str", "lakehouse", "local warehouse + Derby metastore folder (ignored on clusters)"),
        "location": _s("str|null", None, "the schema's storage location (CREATE SCHEMA … LOCATION), e.g. s3://bucket/mfr; "
                                         "Glue needs one; null = the catalog's default"),
        "keep_versions_days": _s("float|null", 30.0, "tables mfr creates keep a replaced version readable this long "
                                                     "(delta.deletedFileRetentionDuration and delta.logRetentionDuration): "
                                                     "time travel and --from-run reach earlier runs after a VACUUM; "
                                                     "null = Delta's defaults (7 days of files, 30 of log)"),
    },
    "spark": {
        "master": _s("str|null", "local[*]", "master for a local session; ignored when a session is active"),
        "remote": _s("str|null", None, "Spark Connect URL (sc://host:15002): connect to it instead of building a session"),
        "app_name": _s("str", "mfr", "application name"),
        "shuffle_partitions": _s("int|null", 8, "spark.sql.shuffle.partitions for local sessions"),
        "conf": _s("map", {}, "extra Spark settings for a session this code creates"),
        "local_paths_shared": _s("bool|null", None, "whether a folder of this machine's disk given as llm.staging_dir, "
                                                    "export.out or collection.cache_dir is the same folder for every "
                                                    "executor: null = only where they all run on this machine (a local "
                                                    "master); true = every node mounts it at that path (NFS, EFS)"),
    },
    "collection": {
        "source": _s(
            "str",
            "hf://datasets/OpenDataArena/MMFineReason-Full-2.3M-Qwen3-VL-235B-Thinking",
            "dump location: local folder, object-store URI, or hf://datasets/ORG/NAME",
        ),
        "subsets": _s("list[str]|null", None, "subset folders (HF configs) to read; null = all"),
        "max_samples": _s("int|null", None, "cap per subset (first rows by id); null = no cap"),
        "cache_dir": _s("str|null", None, "where hub shards are downloaded; null = <warehouse>/hf-cache"),
        "download_workers": _s("int", 8, "parallel shard downloads from the hub"),
        "revision": _s("str|null", None, "hub revision (branch, tag or commit); null = main"),
        "cot_model": _s("str", "Qwen3-VL-235B-A22B-Thinking", "provenance of traces that came with the dump"),
        "caption_model": _s("str", "Qwen3-VL-235B-A22B-Instruct", "provenance of captions that came with the dump"),
    },
    "cleaning": {
        "max_image_size": _s("int", 2048, "longest image edge after cleaning"),
        "clean_images": _s("bool", True, "decode, fix and resize images"),
        "max_image_pixels": _s("int", 89_478_485, "images with more pixels are rejected image_too_large, never decoded"),
        "image_batch_rows": _s("int", 64, "images per Arrow batch in the image UDF (bounds a worker's memory)"),
        "input_column": _s("str", "question", "source text: question or original_question (falls back to question when blank)"),
        "dedup": _s("bool", True, "reject exact duplicates across sources on (image_id, normalised question)"),
        "near_dup": {
            "enabled": _s("bool", False, "reject near duplicates (image near and question near and the same "
                                         "numbers and gold answer) as near_duplicate, one row kept per cluster "
                                         "(off: the seed keeps duplicates; README has the measurements)"),
            "question_jaccard": _s("float", 0.8, "questions near: Jaccard of word 3-shingles at least this"),
            "image_bits": _s("int", 8, "images near: pHash or dHash at most this many bits apart (of 64)"),
            "template_images": _s("int", 3, "a question asked of this many images or more is a template: its rows' "
                                            "images must be near by both hashes (template_bits)"),
            "template_bits": _s("int", 4, "images of a template question near: pHash and dHash each at most this "
                                          "many bits apart"),
            "num_perm": _s("int", 128, "MinHash functions per question"),
            "bands": _s("int", 32, "LSH bands (num_perm / bands values each): more bands find lower similarities"),
            "max_bucket": _s("int", 200, "rows sharing a band key paired all with all up to this many; a larger "
                                         "bucket pairs each row with its neighbours by image hash"),
            "neighbours": _s("int", 8, "in a larger bucket: the next rows each row is paired with, per order"),
            "max_rounds": _s("int", 40, "connected-component rounds before the run fails (a longer chain)"),
            "source_priority": _s("list[str]", [], "sources kept first in a cluster (after a row that carries a "
                                                   "trace); then the smallest sample_key"),
        },
        "prompt": _s("str", "clean.txt", "cleaning prompt file under prompts/"),
        "answer_prompt": _s("str", "answer_extraction.txt", "answer-extraction prompt file under prompts/"),
        "max_tokens": _s("int", 4096, "cleaning model reply limit"),
        "temperature": _s("float", 0.0),
        "llm_client": _client(None, "cleaning model"),
    },
    "decontamination": {
        "benchmarks": _s("list[map]", [], "benchmarks to check clean's rows against (none: the seed's behaviour): each "
                                          "{name, path: folder | s3://… | hf://datasets/<org>/<name>, question, options, "
                                          "image, id, subsets}, columns named as in the dump by default"),
        "ngram": _s("int", 13, "a question sharing a run of this many words with an item's question and options "
                               "(and stating its numbers) overlaps it"),
        "short_min_words": _s("int", 5, "a shorter question (fewer than ngram words, at least this many) overlaps an "
                                        "item whose question and options hold it as a whole run of words"),
        "image_bits": _s("int", 8, "images of a row and an item near: pHash and dHash each at most this many bits apart"),
        "question_jaccard": _s("float", 0.5, "with near images, questions similar: Jaccard of word 3-shingles at "
                                             "least this (and the same numbers)"),
        "text_needs_image": _s("bool", True, "a text match (shared n-gram, short question whole) counts only where "
                                             "the item or the row has no image, or the images are near: a template "
                                             "question over another figure is another item"),
    },
    "distillation": {
        "overwrite": _s("bool", False, "re-distill rows that already carry valid results"),
        "input_table": _s("str|null", None, "table to distill; null = cleaned when it exists, else collected"),
        "cot": {
            "client": _client(None, "CoT teacher"),
            "temperature": _s("float", 1.0),
            "top_p": _s("float", 0.95),
            "max_tokens": _s("int", 16384),
            "thinking": _s("bool", True),
            "seed": _s("int", 0, "sampling seed of the first sample; resamples add their index"),
            "max_resamples": _s("int", 2, "new samples asked after an invalid or truncated answer"),
            "min_words": _s("int", 100, "a valid CoT has at least this many words"),
            "prompt": _s("str", "distill.txt", "prompt file under prompts/"),
            "regenerate_on": _s("list[str]", [], "select reasons whose rows the next distill asks again at the next sample "
                                                 "index (e.g. [ngram_repetition, answer_mismatch]); [] = the seed's way: "
                                                 "such rows are only discarded"),
            "max_regenerations": _s("int", 1, "regenerations a row gets at most (regenerate_on)"),
        },
        "caption": {
            "client": _client(None, "caption model"),
            "temperature": _s("float", 1.0),
            "top_p": _s("float", 0.95),
            "max_tokens": _s("int", 16384),
            "seed": _s("int", 0),
            "max_resamples": _s("int", 1),
            "min_words": _s("int|null", None, "a valid caption has at least this many words; null = "
                            "selection.content.min_caption_words (the bar select applies, so a short caption is "
                            "resampled at distill, not bought and then rejected)"),
            "prompt": _s("str", "caption.txt", "prompt file under prompts/"),
        },
    },
    "selection": {
        "content": {
            "min_response_words": _s("int", 200),
            "min_caption_words": _s("int", 100),
            "error_keyword": _s("str", "[ERROR]"),
        },
        "structure": {
            "no_answer_check_sources": _s(
                "list[str]",
                ["FineVision-visualwebinstruct(filtered)", "LLaVA-CoT", "FineVision-ai2d_merged"],
                "sources whose traces need no <answer> outside <think> (matched as substrings, as the seed does)",
            ),
        },
        "quality": {
            "ngram_n": _s("int", 50),
            "ngram_freq": _s("int", 3),
            "consistency": _s("bool", True),
        },
        "consistency": {
            "gate": _s("str", "auto", "which correctness label gates: auto (the dump's label for the dump's own trace, "
                                      "ours for traces we distilled), computed (ours) or source (the dump's)"),
        },
        "verify": {
            "client": _client(None, "LLM judge for answers the rules cannot decide"),
            "prompt": _s("str", "verify.txt"),
            "max_tokens": _s("int", 512),
            "temperature": _s("float", 0.0),
        },
        "difficulty": {
            "threshold": _s("float|null", None, "keep pass_rate <= threshold; null = off"),
            "num_samples": _s("int", 4),
            "client": _client(None, "small model for the pass-rate probe"),
            "prompt": _s("str", "probe.txt"),
            "max_tokens": _s("int", 512, "the seed's budget: a sample that cannot answer in it fails"),
            "temperature": _s("float", 0.7),
            "top_p": _s("float", 0.95),
        },
    },
    "storage": {
        "options": _s("map", {}, "fsspec options per protocol for files outside tables, e.g. {s3: {requester_pays: true}}; "
                                 "the S3 endpoint and path style come from spark.conf's fs.s3a.* keys"),
    },
    "runs": {
        "incremental": _s("bool", True, "a stage run whose stage settings and code equal its last succeeded run's processes "
                                        "only the input rows that changed since and MERGEs them into its table; false = "
                                        "every run recomputes its whole stage (mfr run --full does so once)"),
        "heartbeat_s": _s("float", 10.0, "how often a running stage's driver renews its lease"),
        "abandon_after_s": _s("float", 120.0, "a run whose lease is older than this is marked abandoned by the next run"),
        "single_writer": _s("bool|null", None, "one running stage per lakehouse, held by a lock object in the staging folder; "
                                               "null = where Delta cannot keep two drivers' commits apart (tables on S3 "
                                               "outside Databricks without S3DynamoDBLogStore)"),
    },
    "llm": {
        "staging_dir": _s("str|null", None, "call journals, leases and intermediates; null = <lakehouse.location>/_mfr when "
                                            "set, else <warehouse>/_llm (must be shared by driver and executors)"),
        "shard_size": _s("int", 20000, "finished calls per Delta commit, made while calls continue"),
        "commit_interval_s": _s("float", 60.0, "longest wait between two commits of finished calls"),
        "commit_mb": _s("float", 64.0, "finished calls' text the driver holds before it commits them (bounds its memory "
                                       "whatever shard_size: 20000 CoTs are ~0.5 GB)"),
        "progress_interval_s": _s("float", 5.0, "seconds between driver progress lines"),
        "tasks": _s("int|null", None, "Spark tasks making calls at once; null = one per 64 requests in flight "
                                      "(a slot stays free for the commits made meanwhile unless every slot is needed)"),
    },
    "export": {
        "out": _s("str|null", "lakehouse/export", "output folder (refused when not empty unless overwrite)"),
        "overwrite": _s("bool", False, "replace what an earlier export wrote in export.out"),
        "subset": _s("str", "selected", "selected (1.8M analogue) | hard (pass_rate < 1) | hardest (pass_rate = 0) | all"),
        "formats": _s("list[str]", ["llamafactory", "hf"], "llamafactory and/or hf"),
        "thinking": _s("bool", True, "assistant turn = <think>…</think> + the written solution as the teacher "
                                      "wrote it; false = the written solution only"),
        "caption_in_answer": _s("bool", False, "open the think block with the dense caption"),
        "shard_rows": _s("int", 20000, "rows per JSONL/parquet file"),
        "table_version": _s("int|null", None, "selected table version to export; null = latest"),
        "select_run": _s("str|null", None, "export what this select run wrote (overrides table_version)"),
        "rl": {
            "rows": _s("int|null", None, "seeded uniform sample of N rows for RL (per-source proportions kept)"),
            "seed": _s("int", 0),
            "exclude_from_sft": _s("bool", True, "leave the RL rows out of the SFT export"),
        },
        "hf": {
            "repo_id": _s("str|null", None, "push the HF export to this dataset repo"),
            "token_env": _s("str|null", "HF_TOKEN", "environment variable that holds the hub token"),
            "private": _s("bool", True),
            "endpoint": _s("str|null", None, "hub URL; null = HF_ENDPOINT or huggingface.co"),
        },
    },
}

def client_defaults() -> dict[str, Any]:
    """Default values of a client section (the same for every client)."""
    return defaults(SCHEMA["cleaning"]["llm_client"])


# Names of values that must never be stored: "max_tokens" is not a secret, "hf_token" is.
_SECRET_NAME = re.compile(r"(secret|passw(or)?d|credential|(^|_)token$|api_?key$|access_?key)", re.I)


def _is_leaf(node: Any) -> bool:
    return isinstance(node, Spec)


def _check(kind: str, value: Any) -> bool:
    if kind == "null":
        return value is None
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "map":
        return isinstance(value, dict)
    if kind == "list[map]":
        return isinstance(value, list) and all(isinstance(v, dict) for v in value)
    raise AssertionError(f"unknown kind {kind}")


def defaults(schema: Mapping[str, Any] = SCHEMA) -> dict[str, Any]:
    """The configuration with every key at its default."""
    return {k: copy.deepcopy(v.default) if _is_leaf(v) else defaults(v) for k, v in schema.items()}


def _spec_at(path: str) -> Spec | dict[str, Any]:
    node: Any = SCHEMA
    for part in path.split("."):
        if _is_leaf(node) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def _coerce(spec: Spec, value: Any) -> Any:
    """Accept what YAML reasonably means: ints where floats are wanted, scalars where strings are."""
    if "float" in spec.kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if ("str" in spec.kinds and not any(_check(k, value) for k in spec.kinds)
            and isinstance(value, (int, float)) and not isinstance(value, bool)):
        return str(value)
    if "list[str]" in spec.kinds and isinstance(value, str) and "str" not in spec.kinds:
        return [value]
    return value


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str, prefix: str = "") -> None:
    """Merge ``update`` into ``base`` in place, validating every key against the schema."""
    if not isinstance(update, Mapping):
        raise ConfigError(f"{where}: '{prefix.rstrip('.') or '<root>'}' must be a mapping")
    for key, value in update.items():
        dotted = f"{prefix}{key}"
        try:
            spec = _spec_at(dotted)
        except KeyError:
            hint = ""
            if _SECRET_NAME.search(str(key)):
                hint = " (secrets are never read from YAML: put the variable's name in api_key_env)"
            raise ConfigError(f"{where}: unknown key '{dotted}'{hint}") from None
        if isinstance(spec, dict):
            if value is None:
                continue
            _merge(base[key], value, where, dotted + ".")
            continue
        value = _coerce(spec, value)
        if not any(_check(k, value) for k in spec.kinds):
            raise ConfigError(
                f"{where}: key '{dotted}' must be {' or '.join(spec.kinds)}, got {type(value).__name__} {value!r}"
            )
        base[key] = copy.deepcopy(value)


def parse_override(item: str) -> tuple[str, Any]:
    """``a.b=value`` → (``a.b``, YAML-parsed value); ``[x, y]`` is a list, ``null`` is None."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected dotted.key=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _nest(dotted: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class Config:
    """A validated configuration. ``data`` holds every key; ``files`` names where it came from."""

    data: dict[str, Any]
    files: tuple[str, ...] = field(default=())
    overrides: tuple[str, ...] = field(default=())

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    @functools.cached_property
    def settings(self) -> Settings:
        """The validated values as typed sections (built once per Config)."""
        from mfr.settings import Settings, build

        return build(Settings, self.data)

    def with_overrides(self, items: Iterable[str]) -> Config:
        data = copy.deepcopy(self.data)
        items = tuple(items)
        for item in items:
            key, value = parse_override(item)
            _merge(data, _nest(key, value), f"--set {item}")
        return Config(data, self.files, self.overrides + items)

    def redacted(self) -> dict[str, Any]:
        """The config with any value under a secret-looking name masked (for logs and mfr.runs)."""
        return _redact(self.data)

    @property
    def hash(self) -> str:
        """Stable hash of the resolved configuration (what a run was computed with)."""
        blob = json.dumps(self.redacted(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _redact(node: Any, key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _redact(v, k) for k, v in node.items()}
    if key and _SECRET_NAME.search(key) and not key.endswith("_env") and node not in (None, ""):
        return "***"
    return node


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> Config:
    """Load defaults, then ``path`` (YAML) if given, then ``--set`` overrides; validate everything."""
    data = defaults()
    files: tuple[str, ...] = ()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p}: not valid YAML: {exc}") from None
        try:
            _merge(data, loaded, str(p))
        except ConfigError as exc:
            from mfr.seed_config import looks_like_seed

            if isinstance(loaded, dict) and looks_like_seed(loaded):
                raise ConfigError(f"{exc} — {p} is the MMFineReason seed's config.yaml: convert it with "
                                  f"`mfr config import {p} > conf/mine.yaml`") from None
            raise
        files = (str(p),)
    return Config(data, files).with_overrides(overrides)


def config_from_mapping(tree: Mapping[str, Any], where: str) -> Config:
    """Defaults with ``tree`` on top, validated like a file (``where`` names it in errors)."""
    data = defaults()
    _merge(data, dict(tree), where)
    return Config(data, (where,))
