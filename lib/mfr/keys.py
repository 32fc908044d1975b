"""Deterministic row keys (pure; the Spark column form lives in ``mfr.stages.common``)."""

from __future__ import annotations

KEY_SEPARATOR = ":"


def sample_key(source: str, sample_id: int | str) -> str:
    """``<source>:<id>``: readable in SQL, unique per dump row, and identical across runs."""
    if source is None or sample_id is None:
        raise ValueError("sample_key needs both source and id")
    return f"{source}{KEY_SEPARATOR}{sample_id}"
