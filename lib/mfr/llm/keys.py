"""Deterministic request keys: the same question to the same model with the same settings has one key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def request_key(
    sample_key: str,
    purpose: str,
    prompt_version: str,
    model: str,
    params: Mapping[str, Any],
    sample_index: int = 0,
) -> str:
    """sha256 over (sample_key, purpose, prompt version, model, sampling params, sample index)."""
    blob = json.dumps(
        [sample_key, purpose, prompt_version, model, dict(sorted(params.items())), int(sample_index)],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
