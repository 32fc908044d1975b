"""The fast n-gram repetition check decides exactly as the plain definition (property tests)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mfr.text.repetition import has_repeated_ngram, max_ngram_count_plain, repetition_problem, think_part


def _plain(tokens, n, freq):
    return max_ngram_count_plain(tokens, n) >= freq


@settings(max_examples=400, deadline=None)
@given(
    tokens=st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=120),
    n=st.integers(1, 8),
    freq=st.integers(1, 5),
)
def test_random_small_alphabet_streams(tokens, n, freq):
    assert has_repeated_ngram(tokens, n, freq) == _plain(tokens, n, freq)


@settings(max_examples=150, deadline=None)
@given(
    unit=st.lists(st.sampled_from(["x", "y", "z", "w", "v"]), min_size=1, max_size=60),
    repeats=st.integers(1, 5),
    noise=st.lists(st.sampled_from(["p", "q", "x"]), max_size=30),
    n=st.sampled_from([5, 20, 50]),
    freq=st.integers(2, 4),
    cut=st.integers(0, 59),
)
def test_adversarial_looping_streams(unit, repeats, noise, n, freq, cut):
    tokens = noise + unit * repeats + unit[:cut] + noise[::-1]
    assert has_repeated_ngram(tokens, n, freq) == _plain(tokens, n, freq)


def test_fifty_gram_boundaries():
    passage = [f"t{i}" for i in range(50)]
    assert not has_repeated_ngram(passage * 2, 50, 3)
    assert has_repeated_ngram(passage * 3, 50, 3)
    # 49 shared tokens three times is not a repeated 50-gram
    short = passage[:49]
    tokens = short + ["u1"] + short + ["u2"] + short + ["u3"]
    assert not has_repeated_ngram(tokens, 50, 3)
    # one token 52 times: three overlapping 50-grams
    assert has_repeated_ngram(["ha"] * 52, 50, 3) and not has_repeated_ngram(["ha"] * 51, 50, 3)


def test_long_random_traces_agree():
    rng = random.Random(7)
    for _ in range(30):
        vocab = [f"w{i}" for i in range(rng.choice([3, 30, 3000]))]
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 1500))]
        assert has_repeated_ngram(tokens, 50, 3) == _plain(tokens, 50, 3)


def test_only_the_think_part_counts():
    loop = " ".join(f"t{i}" for i in range(50))
    answer_loop = f"<think>short reasoning</think><answer>{loop} {loop} {loop}</answer>"
    assert repetition_problem(answer_loop) is None
    assert repetition_problem(f"<think>{loop} {loop} {loop}</think><answer>1</answer>") == "ngram_repetition"
    assert think_part("no tags at all") == "no tags at all"
    assert think_part("<think>unclosed") == "unclosed"


def test_bytes_split_exceptions_cover_every_code_point():
    from mfr.text.repetition import _BYTES_SPACE, _EXTRA_UTF8

    assert set(_BYTES_SPACE.encode()) == {b for b in range(256) if bytes([b]).isspace()}
    extra = {chr(c) for c in range(0x110000) if chr(c).isspace()} - set(_BYTES_SPACE)
    assert {e.decode() for e in _EXTRA_UTF8} == extra


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(["a", "b", "ab", "é", "日本", "x1"]), max_size=150),
    seps=st.lists(st.sampled_from([" ", "\n", "\t", "\u3000", "\xa0", "  ", "\u2029", "\x1c", "\x85", "\u2019", "\x0b"]),
                  min_size=1, max_size=5),
    n=st.integers(1, 6),
    freq=st.integers(1, 4),
)
def test_text_level_check_equals_plain_on_real_whitespace(parts, seps, n, freq):
    from mfr.text.repetition import split_tokens, text_has_repeated_ngram

    text = "".join(p + seps[i % len(seps)] for i, p in enumerate(parts))
    assert [t.decode() if isinstance(t, bytes) else t for t in split_tokens(text)] == text.split()
    expected = _plain(text.split(), n, freq)
    assert text_has_repeated_ngram(text, n, freq) == expected  # the C kernel where built
    assert text_has_repeated_ngram(text, n, freq, native=False) == expected  # the numpy path


def test_text_level_long_traces_agree():
    from mfr.text.repetition import text_has_repeated_ngram

    rng = random.Random(11)
    for _ in range(40):
        vocab = [f"w{i}" for i in range(rng.choice([2, 20, 5000]))]
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 2000))]
        if rng.random() < 0.3 and len(tokens) > 60:
            tokens = tokens + tokens[:55] * 2
        text = " ".join(tokens)
        expected = _plain(tokens, 50, 3)
        assert text_has_repeated_ngram(text, 50, 3) == expected
        assert text_has_repeated_ngram(text, 50, 3, native=False) == expected


def test_the_c_kernel_is_built_and_exact_on_adversarial_input():
    from mfr.text import repetition

    if repetition._native_has_repeat is None:
        pytest.skip("no C compiler where the package was installed: the numpy path is used")
    k = repetition._native_has_repeat
    assert k(b"a " * 52, 50, 3) and not k(b"a " * 51, 50, 3)
    assert not k(b"", 50, 3) and k(b"x y", 1, 1)
    # many windows share a hash-table neighbourhood: two-times repeats everywhere, never three
    block = " ".join(f"t{i}" for i in range(300))
    assert not k(f"{block} {block}".encode(), 50, 3) and k(f"{block} {block} {block}".encode(), 50, 3)
    # tabs, newlines, \x0b, \x0c, \r are ASCII whitespace for bytes.split and str.split alike
    assert k(("q\t" * 3 + "q\x0b" * 3 + "q\r\n" * 50).encode(), 50, 3)
    with pytest.raises(ValueError):
        k(b"a", 0, 3)

