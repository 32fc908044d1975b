"""Fetch an HF-layout dump from the Hugging Face hub (``hf://datasets/ORG/NAME[@REVISION]``).

Shards are resolved with huggingface_hub and downloaded in parallel into a plain ``<subset>/…`` folder
that Spark then reads like any local dump. ``HF_ENDPOINT`` points at a mirror (or a test stand-in);
``HF_TOKEN`` authenticates. With a per-subset cap, shards are fetched in order only until the cap is
covered, so a 100-row sample of a 2.3M-row dump does not download the whole dump.

On a cluster, ``collection.cache_dir`` must be a path every executor can read (a UC Volume, DBFS, EFS).
"""

from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor

from mfr.dump.layout import DEFAULT_SUBSET, DumpError
from mfr.storage import Storage, is_local, join, local_path

_HUB_URI = re.compile(r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)(?:@(?P<rev>[^/]+))?/?$")


def parse_hub_uri(uri: str) -> tuple[str, str | None]:
    """``hf://datasets/ORG/NAME[@REV]`` → (``ORG/NAME``, REV or None)."""
    m = _HUB_URI.match(uri.strip())
    if not m:
        raise DumpError(f"not a hub dataset URI (expected hf://datasets/ORG/NAME[@REVISION]): {uri}")
    return m.group("repo"), m.group("rev")


def is_hub_uri(uri: str) -> bool:
    return uri.startswith("hf://")


def _endpoint() -> str | None:
    return os.environ.get("HF_ENDPOINT") or None


def hub_shards(repo_id: str, revision: str | None) -> tuple[str, dict[str, list[str]]]:
    """(folder holding the subsets, parquet shards per subset in name order)."""
    from huggingface_hub import HfApi

    try:
        files = HfApi(endpoint=_endpoint()).list_repo_files(repo_id, repo_type="dataset", revision=revision)
    except Exception as exc:
        raise DumpError(f"cannot list hub dataset {repo_id} (revision {revision or 'main'}): {exc}") from exc
    parquet = sorted(f for f in files if f.endswith(".parquet"))
    if parquet and all(f.startswith("data/") for f in parquet):  # the hub's converted layout
        parquet = [f[len("data/"):] for f in parquet]
        prefix = "data/"
    else:
        prefix = ""
    shards: dict[str, list[str]] = {}
    for f in parquet:
        parts = f.split("/")
        subset = parts[0] if len(parts) > 1 else DEFAULT_SUBSET
        shards.setdefault(subset, []).append(prefix + f)
    return prefix, shards


def _parquet_rows(storage: Storage, path: str) -> int:
    import pyarrow.parquet as pq

    with storage.open(path) as fh:  # the footer only
        return pq.ParquetFile(fh).metadata.num_rows


def download_dump(
    uri: str,
    cache_dir: str,
    subsets: list[str] | None = None,
    max_samples: int | None = None,
    workers: int = 8,
    revision: str | None = None,
    storage: Storage | None = None,
) -> str:
    """Download the shards a collect run needs into ``cache_dir`` (a local folder, a Volume or an object
    store); returns the dump root there. A shard already in the cache is not downloaded again."""
    from huggingface_hub import hf_hub_download

    storage = storage or Storage()
    repo_id, uri_rev = parse_hub_uri(uri)
    revision = revision or uri_rev
    prefix, shards = hub_shards(repo_id, revision)
    if not shards:
        raise DumpError(f"hub dataset {repo_id} has no parquet files")
    if subsets:
        missing = [s for s in subsets if s not in shards]
        if missing:
            raise DumpError(
                f"hub dataset {repo_id} has no subset(s) {', '.join(missing)}; available: {', '.join(sorted(shards))}"
            )
        shards = {s: shards[s] for s in subsets}
    root = join(cache_dir, repo_id.replace("/", "__"), revision or "main")
    direct = is_local(root)  # the hub client writes local folders (and FUSE mounts) itself

    def fetch(filename: str) -> str:
        target = join(root, *filename.split("/"))
        if direct:
            return hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision,
                                   local_dir=local_path(root), endpoint=_endpoint())
        if storage.size(target) is None:  # through a local scratch copy, then one put
            with tempfile.TemporaryDirectory(prefix="mfr-hub-") as scratch:
                local = hf_hub_download(repo_id, filename, repo_type="dataset", revision=revision,
                                        local_dir=scratch, endpoint=_endpoint())
                storage.put_file(local, target)
        return target

    def fetch_subset(files: list[str]) -> None:
        rows = 0
        for filename in files:  # in order, stopping once the cap is covered
            rows += _parquet_rows(storage, fetch(filename))
            if max_samples is not None and rows >= max_samples:
                return

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        if max_samples is None:
            list(pool.map(fetch, [f for files in shards.values() for f in files]))
        else:
            list(pool.map(fetch_subset, shards.values()))
    return join(root, prefix.rstrip("/")) if prefix else root
