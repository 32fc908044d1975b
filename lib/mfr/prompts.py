"""Prompt files under prompts/, each with a version that changes whenever its text does."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mfr.session import REPO_ROOT

PROMPTS = REPO_ROOT / "prompts"


def load_prompt(name: str) -> tuple[str, str]:
    """(template, version): ``name`` under prompts/ (or an absolute path); version = stem@sha256[:10]."""
    path = Path(name) if os.path.isabs(name) else PROMPTS / name
    text = path.read_text(encoding="utf-8")
    return text, f"{path.stem}@{hashlib.sha256(text.encode()).hexdigest()[:10]}"
