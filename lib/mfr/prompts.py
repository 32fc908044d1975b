"""Prompt files (shipped under prompts/ or the user's own), each with a version that changes with its text."""

from __future__ import annotations

import hashlib

from mfr.resources import shipped


def load_prompt(name: str) -> tuple[str, str]:
    """(template, version): ``name`` among the shipped prompts, or a path of the user's own;
    version = stem@sha256[:10]."""
    path = shipped("prompts", name)
    text = path.read_text(encoding="utf-8")
    return text, f"{path.stem}@{hashlib.sha256(text.encode()).hexdigest()[:10]}"
