"""The hub path (hf://datasets/ORG/NAME) against a local stand-in for the hub (HF_ENDPOINT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mfr.dump.hub import download_dump, parse_hub_uri
from mfr.dump.layout import DumpError
from mfr.lakehouse import Lakehouse
from mfr.runner import run_stage
from tests.hub_standin import HubStandIn, private_repo

pytestmark = pytest.mark.compat  # the hub client's versions differ per leg


@pytest.fixture(scope="module")
def sharded_dump(tmp_path_factory):
    import mfr.sample.synthetic as synthetic

    out = tmp_path_factory.mktemp("hubrepo") / "repo"
    old = synthetic.ROWS_PER_SHARD
    synthetic.ROWS_PER_SHARD = 10  # 3 shards per subset
    try:
        synthetic.write_sample(out, 90)
    finally:
        synthetic.ROWS_PER_SHARD = old
    (out / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    return out


@pytest.fixture
def hub(sharded_dump, monkeypatch):
    with HubStandIn({"org/mmfr": sharded_dump}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
        yield server


def test_parse_hub_uri():
    assert parse_hub_uri("hf://datasets/OpenDataArena/MMFineReason") == ("OpenDataArena/MMFineReason", None)
    assert parse_hub_uri("hf://datasets/a/b@v1.0") == ("a/b", "v1.0")
    with pytest.raises(DumpError):
        parse_hub_uri("hf://models/a/b")


def test_capped_download_fetches_only_the_shards_it_needs(hub, tmp_path):
    root = Path(download_dump("hf://datasets/org/mmfr", tmp_path, subsets=["synth-charts"], max_samples=12, workers=4))
    got = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert got == ["synth-charts/train-00000-of-00003.parquet", "synth-charts/train-00001-of-00003.parquet"]
    assert len(hub.downloads()) == 2


def test_unknown_repo_and_subset_are_clear_errors(hub, tmp_path):
    with pytest.raises(DumpError, match="cannot list hub dataset org/missing"):
        download_dump("hf://datasets/org/missing", tmp_path)
    with pytest.raises(DumpError, match="no subset.*nope.*available: synth-charts, synth-geometry, synth-grids"):
        download_dump("hf://datasets/org/mmfr", tmp_path, subsets=["nope"])


@pytest.mark.slow  # moved out of `make test` to keep it under 15 minutes on CI; `make test-slow` runs it
def test_collect_from_the_hub(spark, make_cfg, hub, tmp_path):
    cfg = make_cfg("collection.source=hf://datasets/org/mmfr", f"collection.cache_dir={tmp_path}", "collection.download_workers=4")
    r = run_stage(spark, cfg, "collect")
    assert r.rows_in == 90 and r.rows_kept + r.rows_rejected + r.rows_quarantined == 90
    assert len(hub.downloads()) == 9
    assert Lakehouse(spark, cfg).read("collected").select("subset").distinct().count() == 3


def test_an_export_folder_is_pushed_whole_in_one_private_dataset_repo(tmp_path, monkeypatch):
    """The hub push on its own (no Spark): the repo made private, every file uploaded as it is on disk, the
    token sent with every request and read only from the named variable."""
    import huggingface_hub.constants

    from mfr.export.hub_push import push_folder

    folder = tmp_path / "hf"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    (folder / "data" / "train-00000.parquet").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ValueError, match="MFR_TEST_PUSH_TOKEN"):
        push_folder(folder, "me/pushed", "MFR_TEST_PUSH_TOKEN")
    monkeypatch.setenv("MFR_TEST_PUSH_TOKEN", "hf_push_token")
    with HubStandIn({}) as hub:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
        url = push_folder(folder, "me/pushed", "MFR_TEST_PUSH_TOKEN", endpoint=hub.url)
    assert url.startswith(hub.url) and "/datasets/me/pushed/" in url
    assert len(hub.created) == 1 and hub.created[0]["type"] == "dataset" and private_repo(hub.created[0])
    assert hub.uploads["me/pushed"] == {"README.md": (folder / "README.md").read_bytes(),
                                        "data/train-00000.parquet": (folder / "data" / "train-00000.parquet").read_bytes()}
    assert hub.tokens and all(t == "Bearer hf_push_token" for t in hub.tokens)
