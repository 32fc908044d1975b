"""Push an exported HF dataset folder to the hub (or a compatible endpoint)."""

from __future__ import annotations

import os
from pathlib import Path


def push_folder(folder: Path, repo_id: str, token_env: str | None, private: bool = True,
                endpoint: str | None = None) -> str:
    """Create the dataset repo if needed and upload ``folder`` in one commit; returns the commit URL.

    The token is read from the environment variable ``token_env`` only (never from config files).
    """
    from huggingface_hub import HfApi

    token = os.environ.get(token_env) if token_env else None
    if not token:
        raise ValueError(f"export.hf.repo_id is set but no token: set the environment variable {token_env or '(export.hf.token_env)'}")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                             commit_message="mfr export")
    return str(info.commit_url if hasattr(info, "commit_url") else info)
