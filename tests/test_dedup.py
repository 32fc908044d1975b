"""Near-duplicate signals on plain values: image fingerprints on real images and their re-hosted copies,
MinHash against exact Jaccard, band keys, and the rule that joins two rows or keeps them apart."""

from __future__ import annotations

import io
import re
import itertools

import numpy as np
import pytest

from mfr.dedup.fingerprint import fingerprints
from mfr.dedup.minhash import band_count_for, bands, estimated_jaccard, jaccard, near_key_text, shingles, signatures
from mfr.dedup.near import NearRule, Sample, image_distance, near_duplicate, question_numbers


def _real_images(real_sample, n: int = 8) -> list[bytes]:
    import pyarrow.parquet as pq

    out = []
    for path in sorted(real_sample.rglob("*.parquet")):
        for row in pq.read_table(path, columns=["image"]).to_pylist():
            if row["image"] and row["image"].get("bytes"):
                out.append(row["image"]["bytes"])
                break
        if len(out) == n:
            break
    return out


def _rehosted(data: bytes) -> dict[str, bytes]:
    from PIL import Image, ImageEnhance, ImageOps

    img = Image.open(io.BytesIO(data)).convert("RGB")

    def jpeg(im, quality: int = 85) -> bytes:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=quality)
        return buf.getvalue()

    return {"jpeg_q40": jpeg(img, 40), "half_size": jpeg(img.resize((img.width // 2, img.height // 2))),
            "border": jpeg(ImageOps.expand(img, border=max(4, img.width // 40), fill="white")),
            "brighter": jpeg(ImageEnhance.Brightness(img).enhance(1.1)),
            "less_contrast": jpeg(ImageEnhance.Contrast(img).enhance(0.9)), "png": _png(img)}


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def test_fingerprints_of_rehosted_copies_stay_close_and_other_images_far(real_sample):
    images = _real_images(real_sample)
    assert len(images) >= 6
    hashes = [fingerprints(x) for x in images]
    for data, original in zip(images, hashes):
        for kind, copy in _rehosted(data).items():
            assert image_distance(original, fingerprints(copy)) <= NearRule().image_bits, kind
    apart = [image_distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(apart) > NearRule().image_bits, apart  # different pictures (14 bits at least on these)


def test_fingerprints_refuse_bytes_no_decoder_reads():
    from PIL import UnidentifiedImageError

    with pytest.raises(UnidentifiedImageError):  # the clean step turns it into image_corrupt
        fingerprints(b"not an image")


def test_normalised_questions_fold_width_case_spacing_and_the_image_tag():
    assert near_key_text("<image>Find  ＡＢ, if x＝３.") == near_key_text("find ab, if x=3.") == near_key_text("<IMAGE>FIND AB, IF X=3.")
    assert shingles("<image>Find ＡＢ，if x＝３.") == shingles("find AB, if x = 3.")  # punctuation is a word
    assert shingles("a b") == {"a b"} and shingles("") == set()
    assert "三 角 形" in shingles("在三角形中")  # a CJK character is a word


def test_minhash_estimates_jaccard_and_band_keys_meet_only_for_similar_questions():
    rng = np.random.default_rng(0)
    vocab = [f"w{i}" for i in range(400)]
    base = [" ".join(rng.choice(vocab, 40)) for _ in range(30)]
    edited = [t.replace(t.split()[5], "changed", 1) for t in base]  # one word of forty
    sigs = signatures(base + edited + [None])
    for i in range(30):
        exact = jaccard(shingles(base[i]), shingles(edited[i]))
        assert abs(estimated_jaccard(sigs[i], sigs[30 + i]) - exact) < 0.15
    assert (sigs[-1] == 0xFFFFFFFF).all()  # nothing to hash
    assert np.array_equal(signatures(base[:3]), sigs[:3])  # the same values whatever else is in the batch
    n_bands = band_count_for(0.7, 128)
    keys = [set(bands(s, n_bands)) for s in sigs[:60]]
    assert all(keys[i] & keys[30 + i] for i in range(30))  # every near copy is a candidate
    unrelated = sum(bool(keys[i] & keys[j]) for i, j in itertools.combinations(range(30), 2))
    assert unrelated == 0
    with pytest.raises(ValueError):
        bands(sigs[0], 7)


QUESTION = "<image>As shown in the figure, in triangle ABC, AB = 5 and AC = 12. Find the length of BC."


IMAGE = (0, 0)


@pytest.mark.parametrize("b, near, why", [
    (Sample("As shown in the figure , in triangle ABC, AB = 5 and AC = 12. Find the length of BC.", "13", (1 << 3, 0)),
     True, "question jaccard"),  # re-spaced text, a re-encoded image
    (Sample("As shown in the figure, in triangle ABC, AB = 5 and AC = 12. Find the area of the triangle ABC.", "30", IMAGE),
     False, "questions differ"),  # the same diagram, another question
    (Sample(QUESTION, "13", (0x0F0F0F0F0F0F0F0F, 0x00FF00FF00FF00FF)), False, "images differ"),  # the template, another figure
    (Sample(QUESTION.replace("12", "13"), "√194", IMAGE), False, "apart"),  # the same question, other numbers
    (Sample(QUESTION, "14", IMAGE), False, "gold answers differ"),
    (Sample(QUESTION, None, IMAGE), True, "question jaccard"),  # a missing gold answer does not keep them apart
    (Sample(QUESTION, "13", None), False, "one has an image"),
])
def test_the_near_duplicate_rule(b, near, why):
    a = Sample(QUESTION, "13", IMAGE)
    decided, detail = near_duplicate(a, b, jaccard(shingles(a.question), shingles(b.question)))
    assert decided is near and (why in detail or why == "apart"), detail


def test_a_template_questions_figures_must_be_near_by_both_hashes():
    """One close hash joins two rows unless either question is a template (asked of several images): figures
    drawn from one template share most of one hash, a re-hosted copy keeps both."""
    one_close = (1 << 2, (1 << 20) - 1)  # pHash 1 bit apart, dHash 20 bits apart
    both_close = (1 << 2, 0b11)
    assert near_duplicate(Sample(QUESTION, "13", IMAGE), Sample(QUESTION, "13", one_close), 1.0)[0]
    decided, why = near_duplicate(Sample(QUESTION, "13", IMAGE, template=True), Sample(QUESTION, "13", one_close), 1.0)
    assert not decided and why == "images differ (20 bits, a template question: both hashes)"
    assert near_duplicate(Sample(QUESTION, "13", IMAGE, template=True), Sample(QUESTION, "13", both_close, True), 1.0) == (
        True, "question jaccard 1.00, image 2 bits apart")


def test_other_numbers_keep_near_questions_apart_whatever_their_jaccard():
    a, b = Sample(QUESTION, "13", IMAGE), Sample(QUESTION.replace("12", "13"), "13", IMAGE)
    assert near_duplicate(a, b, 0.95) == (False, "numbers in the questions differ")


def test_rows_without_images_compare_by_question_alone():
    a, b = Sample("What is 2 + 3?", "5", None), Sample("what is 2+3 ?", "5", None)
    assert near_duplicate(a, b, jaccard(shingles(a.question), shingles(b.question)))[0]
    assert question_numbers("x = ３ and y = 3.0") == question_numbers("x=3, y=3")


@pytest.mark.parametrize("setting, says", [
    ("template_bits=65", "cleaning.near_dup.template_bits must be 0..64"),
    ("template_images=0", "cleaning.near_dup.template_images must be at least 1"),
    ("bands=30", "cleaning.near_dup.bands (30) must divide cleaning.near_dup.num_perm (128)"),
])
def test_a_bad_near_duplicate_setting_is_one_line_naming_its_key(setting, says):
    from mfr.config import load_config
    from mfr.stages.near_duplicates import near_dup_settings

    with pytest.raises(ValueError, match=re.escape(says)):
        near_dup_settings(load_config(overrides=[f"cleaning.near_dup.{setting}"]))
    rule = near_dup_settings(load_config(overrides=["cleaning.near_dup.template_bits=6"])).rule
    assert rule.template_bits == 6  # the override reaches the rule
