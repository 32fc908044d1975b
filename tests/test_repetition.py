"""The fast n-gram repetition check decides exactly as the plain definition (property tests)."""

from __future__ import annotations

import random

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


def test_split_whitespace_table_covers_every_code_point():
    from mfr.text.repetition import _SPACE_LIMIT

    assert not any(chr(c).isspace() for c in range(_SPACE_LIMIT, 0x110000))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.sampled_from(["a", "b", "ab", "é", "日本", "x1"]), max_size=150),
    seps=st.lists(st.sampled_from([" ", "\n", "\t", "\u3000", "\xa0", "  ", "\u2029"]), min_size=1, max_size=5),
    n=st.integers(1, 6),
    freq=st.integers(1, 4),
)
def test_text_level_check_equals_plain_on_real_whitespace(parts, seps, n, freq):
    from mfr.text.repetition import text_has_repeated_ngram, token_hashes

    text = "".join(p + seps[i % len(seps)] for i, p in enumerate(parts))
    assert token_hashes(text).size == len(text.split())
    assert text_has_repeated_ngram(text, n, freq) == _plain(text.split(), n, freq)


def test_text_level_long_traces_agree():
    from mfr.text.repetition import text_has_repeated_ngram

    rng = random.Random(11)
    for _ in range(40):
        vocab = [f"w{i}" for i in range(rng.choice([2, 20, 5000]))]
        tokens = [rng.choice(vocab) for _ in range(rng.randint(0, 2000))]
        if rng.random() < 0.3 and len(tokens) > 60:
            tokens = tokens + tokens[:55] * 2
        text = " ".join(tokens)
        assert text_has_repeated_ngram(text, 50, 3) == _plain(tokens, 50, 3)

