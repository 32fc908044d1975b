"""Pure functions: keys, dump layout checks, image headers."""

import io

import pyarrow as pa
import pytest
from PIL import Image

from mfr.dump.layout import arrow_kind, column_problems, subset_of, unknown_columns, validate_files, DumpError, DumpFile
from mfr.image.info import image_info
from mfr.keys import sample_key


def test_sample_key_is_readable_and_the_same_in_another_interpreter():
    import subprocess
    import sys

    assert sample_key("BMMR", 72393) == "BMMR:72393"
    code = "from mfr.keys import sample_key; print(sample_key('BMMR', 72393), sample_key('Euclid30K', '7'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": "12345", "PATH": "", "PYTHONPATH": ":".join(sys.path)})
    assert other.stdout.split() == [sample_key("BMMR", 72393), "Euclid30K:7"]  # nothing hashed per process
    assert sample_key("BMMR", 7) != sample_key("BMMR", 72393)
    with pytest.raises(ValueError):
        sample_key("BMMR", None)


def test_column_problems():
    ok = {"id": "int", "question": "string", "answer": "string", "image": "image", "pass_rate": "float"}
    assert column_problems(ok) == []
    assert column_problems({**ok, "ori_question": "null"}) == []  # an all-null column fits anything
    probs = column_problems({"id": "string", "question": "string"})
    assert any("missing required column(s) answer" in p for p in probs)
    assert any("column 'id' has type string, expected int" in p for p in probs)
    assert unknown_columns({**ok, "extra": "string"}) == ["extra"]


def test_validate_files_names_every_bad_file():
    files = [DumpFile("a", "/d/a/x.parquet", {"id": "int"}), DumpFile("b", "/d/b/y.parquet", {"id": "int", "question": "string", "answer": "string"})]
    with pytest.raises(DumpError, match=r"/d/a/x\.parquet: missing required column\(s\) question, answer") as e:
        validate_files(files)
    assert "/d/b/y.parquet" not in str(e.value)


def test_subset_of():
    assert subset_of("BMMR/train-00000-of-00001.parquet") == "BMMR"
    assert subset_of("BMMR/data/part.parquet") == "BMMR"
    assert subset_of("train.parquet") == "default"


def test_arrow_kind():
    assert arrow_kind(pa.large_string()) == "string"
    assert arrow_kind(pa.int32()) == "int"
    assert arrow_kind(pa.float32()) == "float"
    assert arrow_kind(pa.struct([("bytes", pa.binary()), ("path", pa.string())])) == "image"
    assert arrow_kind(pa.list_(pa.string())).startswith("other:")


def _encode(img, fmt):
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_image_info_reads_headers_only():
    assert image_info(_encode(Image.new("RGB", (40, 30)), "PNG")) == (40, 30, "PNG")
    assert image_info(_encode(Image.new("CMYK", (5, 7)), "JPEG")) == (5, 7, "JPEG")
    big = _encode(Image.new("L", (3000, 20)), "PNG")
    assert image_info(big[: len(big) // 2]) == (3000, 20, "PNG")  # header survives truncation
    assert image_info(b"") is None
    assert image_info(None) is None
    assert image_info(b"not an image at all") is None
