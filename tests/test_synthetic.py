import hashlib
import io

import pyarrow.parquet as pq
from PIL import Image

from mfr.sample.synthetic import SCENARIOS, write_sample


def _digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*.parquet"))}


def test_sample_is_deterministic_and_hf_layout(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    write_sample(a, 40)
    write_sample(b, 40)
    assert _digest(a) == _digest(b)
    assert sorted(_digest(a)) == [f"{s}/train-00000-of-00001.parquet" for s in ("synth-charts", "synth-geometry", "synth-grids")]
    write_sample(a, 40)  # rewriting its own folder is allowed
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "x.txt").write_text("mine")
    import pytest

    with pytest.raises(FileExistsError):
        write_sample(tmp_path / "c", 5)


def test_sample_covers_the_cases(synthetic_dump):
    rows = [r for p in sorted(synthetic_dump.rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 90 and len(SCENARIOS) < 90
    modes, big, corrupt, missing = set(), 0, 0, 0
    for r in rows:
        if r["image"] is None:
            missing += 1
            continue
        try:
            with Image.open(io.BytesIO(r["image"]["bytes"])) as im:
                im.load()
                modes.add(im.mode)
                big += max(im.size) > 2048
        except OSError:
            corrupt += 1
    assert {"RGB", "RGBA", "CMYK", "P", "L", "I;16"} <= modes
    assert big >= 2 and corrupt == 1 and missing == 1
    questions = " ".join(r["question"] or "" for r in rows)
    for needle in ("https://", "第3题（5分）", "Q12.", "Just give the answer", "Write a Python function", "Draw the", "直接写出答案"):
        assert needle in questions
    cots = [r["qwen3vl_235b_thinking_response"] for r in rows]
    assert any(c is None for c in cots) and any(r["caption"] is None for r in rows)
    assert any(r["is_consistent"] is False for r in rows)
    keys = [(r["source"], r["id"]) for r in rows]
    assert len(keys) - len(set(keys)) == 1


def test_large_bench_dumps_are_copies_with_their_own_ids_and_images(tmp_path, monkeypatch):
    from bench import collect_bench

    monkeypatch.setattr(collect_bench, "_GENERATED_MAX", 40)
    big = collect_bench._dump(tmp_path, 120)
    base = [r for p in sorted((tmp_path / "bench-dump-40").rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    rows = [r for p in sorted(big.rglob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 3 * len(base) == 120

    def images(rs):
        return [r["image"]["bytes"] for r in rs if r["image"] and r["image"]["bytes"]]

    def ids(rs):
        return [r["id"] for r in rs if r["id"] is not None]

    # every copy keeps the base's duplicates and nothing more: no key or image of one copy meets another's
    assert len(set(ids(rows))) == 3 * len(set(ids(base)))
    assert len({hashlib.sha256(b).digest() for b in images(rows)}) == 3 * len({hashlib.sha256(b).digest() for b in images(base)})
    # an image's header (what collect reads its size and format from) is the base image's
    assert sorted(b[:64] for b in images(rows)) == sorted(b[:64] for b in images(base) for _ in range(3))
    import pytest

    with pytest.raises(ValueError, match="multiple of 40"):
        collect_bench._dump(tmp_path, 100)


def test_copies_share_files_when_asked(tmp_path):
    # the real sample's files hold ~10 rows: copied a thousand times they are grouped, not a file per copy
    from bench import collect_bench

    base = collect_bench._dump(tmp_path, 40)
    collect_bench._copies(base, tmp_path / "grouped", 5, per_file=2)
    base_files = sorted(base.rglob("*.parquet"))
    files = sorted((tmp_path / "grouped").rglob("*.parquet"))
    assert len(files) == 3 * len(base_files)  # copies {0, 1}, {2, 3}, {4} of each file
    rows = [r for p in files for r in pq.read_table(p).to_pylist()]
    base_rows = [r for p in base_files for r in pq.read_table(p).to_pylist()]
    assert len(rows) == 5 * len(base_rows)
    ids = [r["id"] for r in rows if r["id"] is not None]
    assert len(set(ids)) == 5 * len({r["id"] for r in base_rows if r["id"] is not None})
