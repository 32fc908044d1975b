"""The MMFineReason seed's ``config.yaml`` as an mfr config (``mfr config import seed.yaml``), no Spark.

Every key of the seed's file is either mapped onto an mfr key or named as dropped with the reason; keys the
seed's file does not define are reported too, never silently lost. What differs in meaning (not only in
name) is said in the notes: an API key is never written into a config file (mfr reads it from the
environment variable that ``api_key_env`` names), and Spark, not a process pool, sets the parallelism.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

# seed key (dotted) -> mfr key (dotted); a client section is mapped by _client below
_SAME = {
    "collection.subsets": "collection.subsets",
    "collection.cache_dir": "collection.cache_dir",
    "collection.max_samples": "collection.max_samples",
    "collection.revision": "collection.revision",
    "cleaning.max_image_size": "cleaning.max_image_size",
    "cleaning.clean_images": "cleaning.clean_images",
    "cleaning.max_tokens": "cleaning.max_tokens",
    "cleaning.temperature": "cleaning.temperature",
    **{f"distillation.cot.{k}": f"distillation.cot.{k}" for k in ("temperature", "top_p", "max_tokens", "thinking")},
    **{f"distillation.caption.{k}": f"distillation.caption.{k}" for k in ("temperature", "top_p", "max_tokens")},
    **{f"selection.content_filter.{k}": f"selection.content.{k}"
       for k in ("min_response_words", "min_caption_words", "error_keyword")},
    "selection.structure_filter.no_answer_check_datasets": "selection.structure.no_answer_check_sources",
    **{f"selection.quality_filter.{k}": f"selection.quality.{k}" for k in ("ngram_n", "ngram_freq", "consistency")},
    "selection.difficulty_filter.threshold": "selection.difficulty.threshold",
    "selection.difficulty_filter.num_samples": "selection.difficulty.num_samples",
}

_CLIENTS = {
    "cleaning.llm_client": ("cleaning.llm_client", "MFR_CLEANING_API_KEY"),
    "distillation.cot.client": ("distillation.cot.client", "MFR_COT_API_KEY"),
    "distillation.caption.client": ("distillation.caption.client", "MFR_CAPTION_API_KEY"),
    "selection.difficulty_filter.client": ("selection.difficulty.client", "MFR_PROBE_API_KEY"),
}

_DROPPED = {
    "num_proc": "Spark sets the parallelism (spark.master, the cluster's cores, llm.tasks); there is no process pool to size",
}


def _flatten(node: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and f"{dotted}" not in _SAME and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _put(tree: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        tree = tree.setdefault(p, {})
    tree[leaf] = value


def import_seed(seed: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """(an mfr config tree, one note per key that was dropped or changed meaning)."""
    flat = _flatten(seed)
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in flat.items():
        client = next((c for c in _CLIENTS if key.startswith(c + ".")), None)
        if key in _SAME:
            _put(out, _SAME[key], value)
        elif key == "collection.dataset_id":
            _put(out, "collection.source", f"hf://datasets/{value}")
        elif client is not None:
            target, env = _CLIENTS[client]
            field = key[len(client) + 1:]
            if field in ("api_base", "model"):
                if value not in (None, ""):
                    _put(out, f"{target}.{field}", value)
            elif field == "type":
                notes.append(f"{key} ({value!r}) dropped: mfr speaks the OpenAI protocol to any server (vLLM, SGLang, "
                             "hosted APIs); there is no client type to pick")
            elif field == "api_key":
                if value:
                    _put(out, f"{target}.api_key_env", env)
                    notes.append(f"{key} dropped: a key is never stored in a config file; export {env}=<the key> "
                                 f"({target}.api_key_env names it)")
                else:
                    notes.append(f"{key} dropped: empty (the server needs no key); set {target}.api_key_env when one does")
            else:
                notes.append(f"{key} dropped: not a client setting mfr knows")
        elif key in _DROPPED:
            notes.append(f"{key} ({value!r}) dropped: {_DROPPED[key]}")
        else:
            notes.append(f"{key} dropped: not a key of the seed's config.yaml that mfr maps")
    return out, notes


def render(tree: Mapping[str, Any], notes: list[str], source: str) -> str:
    """The config as YAML, the notes as comments above it (the file explains itself)."""
    head = [f"# mfr config imported from {source} (mfr config import)"]
    head += [f"# - {n}" for n in notes] or ["# every key mapped"]
    body = yaml.safe_dump(dict(tree), sort_keys=False, allow_unicode=True, default_flow_style=False)
    return "\n".join(head) + "\n" + body


_SEED_ONLY = re.compile(r"^(num_proc|selection\.(content|structure|quality|difficulty)_filter)(\.|$)")


def looks_like_seed(loaded: Mapping[str, Any]) -> bool:
    """Whether a config file is the seed's own (so loading it can say how to convert it)."""
    return any(_SEED_ONLY.match(k) for k in _flatten(loaded))
