"""Files mfr ships (prompts, the default config, the training recipe), found the same way from a wheel
and from a checkout.

A wheel carries them as package data under ``mfr/_data/`` (copied from the checkout's ``prompts/`` and
``conf/`` at build time, see setup.py); a checkout (editable install, tests) reads the top-level folders.
A user's own file (an absolute path, or one that exists relative to the working folder) always wins.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def _packaged(kind: str) -> Path | None:
    root = resources.files("mfr") / "_data" / kind
    return Path(str(root)) if root.is_dir() else None


def data_dir(kind: str) -> Path:
    """``prompts`` or ``conf``: the packaged copy when installed from a wheel, else the checkout's folder."""
    packaged = _packaged(kind)
    if packaged is not None:
        return packaged
    return CHECKOUT / kind


def shipped(kind: str, name: str) -> Path:
    """A shipped file by name (``prompts``/``distill.txt``); a path that exists as given wins."""
    given = Path(name)
    if given.is_absolute() or (os.sep in name and given.is_file()):
        return given
    return data_dir(kind) / name


def default_config() -> Path | None:
    """The embedded default config (``conf/local.yaml``), if shipped."""
    path = data_dir("conf") / "local.yaml"
    return path if path.is_file() else None


def train_recipe() -> Path:
    return data_dir("conf") / "llamafactory" / "mfr_8b.yaml"
