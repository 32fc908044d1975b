"""Does a trace's final answer match the ground truth? Rules first, then symbolic math (pure, offline).

``verify(question, gold, response)`` → ``Verdict(consistent, method, analysis)`` where ``consistent``
is True, False, or None when the rules cannot decide (an LLM judge may decide those later). There is
no loose substring matching: "inverted pentagon" is not "pentagon". This module holds the one entry point
and the comparison of two single answers (``_atom``); the rules it applies live beside it: ``normalize``
(how an answer is written), ``numbers`` (values, units, rounding, clock times), ``options`` (multiple
choice), ``parts`` (lists, tuples, named parts), ``symbolic`` (math-verify), ``judge`` (the judge's reply)
and ``free_form`` (solutions that mark no answer).
"""

from __future__ import annotations

import re

from mfr.answers.boxed import last_boxed
from mfr.answers.extract import extract_answer
from mfr.answers.normalize import POINT_NAMES, RELATION, WORDS, bracketed, normalize, prose, rhs, unwrap
from mfr.answers.numbers import approx_match, clock_match, num_match
from mfr.answers.options import (
    GOLD_OPTION,
    LETTER,
    as_letter,
    letter_for_content,
    letter_set,
    named_option,
    option_states,
    parse_options,
    spellings,
)
from mfr.answers.parts import item_lists, many_vs_many, one_vs_many
from mfr.answers.symbolic import parse_side, symbolic_match
from mfr.answers.verdict import Decision, Verdict
from mfr.text.cot import ANSWER_TAG, final_answer, parse_trace


def predicted_answer(response: str | None) -> str | None:
    """The answer outside the think block; else the last ``\\boxed{}``; else the last answer tag; else what
    the extraction rules find certain in the written solution ("The answer is X", a last line "Answer: X")."""
    if not response:
        return None
    ans = final_answer(response)
    if ans:
        return ans
    boxed = last_boxed(response)
    if boxed:
        return boxed
    tags = ANSWER_TAG.findall(response)
    if tags:
        return tags[-1].strip()
    return extract_answer(parse_trace(response).tail)


def _atom(g: str, p: str, options: dict[str, str]) -> Decision:
    ng, np_ = normalize(g), normalize(p)
    if ng == np_ or normalize(rhs(g)) == normalize(rhs(p)):
        return True, "exact"
    named = GOLD_OPTION.match(unwrap(g))
    if named and not LETTER.match(unwrap(g)):
        return named_option((named.group(1) or named.group(2)).upper(), named.group(3), p, options, _atom)
    gl = as_letter(g, options) if LETTER.match(unwrap(g)) else None
    if gl:
        pl = as_letter(p, options)
        if pl:
            return pl == gl, "choice"
        if gl in options:  # gold is a letter, the trace answered with the option's content
            opt = options[gl]
            if np_ in spellings(opt) or normalize(rhs(p)) in spellings(opt):  # "5" or "x = 5" for option "5"
                return True, "choice_text"
            num = num_match(opt, p)
            if num is None and rhs(p) != unwrap(p):
                num = num_match(opt, rhs(p))
            if num is not None:
                return num[0], "choice_numeric"
            if any(np_ in spellings(text) for letter, text in options.items() if letter != gl):
                return False, "choice_text"  # the trace named another option's content
            return option_states(gl, p, options, _atom), "choice_text"
        return None, "choice"  # a letter against text, with no options to map it: undecided
    if LETTER.match(unwrap(p)):  # the gold is an option's content, the trace answered with a letter
        return letter_for_content(g, p, options, _atom)
    num = num_match(g, p)
    if num is None and (rhs(g), rhs(p)) != (unwrap(g), unwrap(p)):
        num = num_match(rhs(g), rhs(p))  # "x = 5" against "x = 4"
    if num is not None:
        return num
    if ("°" in ng) != ("°" in np_) and "\\pi" in ng + np_:
        return None, "units"  # degrees against radians: the rules do not convert
    if POINT_NAMES.fullmatch(unwrap(g)) and sorted(unwrap(g)) == sorted(unwrap(p)):
        return None, "names"  # "CA" for "AC": one segment, a triangle's vertices in another order, or a sequence
    if WORDS.fullmatch(unwrap(g)) and WORDS.fullmatch(unwrap(p)):
        # both plain words: the same words up to an article, a plural or a subject in front ("it
        # increases"), else different answers ("inverted pentagon" is not "pentagon")
        gw, pw = _word_forms(g), _word_forms(p)
        return gw == pw or "".join(gw) == "".join(pw), "words"  # "north-east" is "northeast"
    clock = clock_match(ng, np_)
    if clock is not None:
        return clock
    approx = approx_match(g, p)
    if approx is not None:
        return approx
    sym = symbolic_match(g, p)
    if sym is False and (RELATION.search(g + p) or "→" in ng + np_ or max(len(unwrap(g)), len(unwrap(p))) > 40
                         or prose(g) or prose(p)):
        sym = None  # statements, paths, long identities and words: math-verify's "different" is not trusted
    if sym is not None:
        return sym, "symbolic"
    return None, "undecided"


_BOOLEAN = {"yes": "yes", "true": "yes", "correct": "yes", "no": "no", "false": "no", "incorrect": "no"}


_COMPASS = {"ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest"}


_ARTICLE = re.compile(r"^(?:(?:it|this|that|they|he|she)(?:\s+(?:is|are|was|were|will|would))?\s+)?(?:(?:the|a|an)\s+)?", re.I)


def _word_forms(s: str) -> list[str]:
    """Words without a subject or an article in front, each without a plural -s (``the cats`` and ``they
    are cats`` → ``cat``)."""
    words = _ARTICLE.sub("", unwrap(s).strip()).lower().replace("-", " ").split()
    if len(words) == 1 and words[0] in _BOOLEAN:
        return [_BOOLEAN[words[0]]]
    if len(words) == 1 and words[0] in _COMPASS:
        return [_COMPASS[words[0]]]
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


_SAID = re.compile(r"^(yes|no|true|false)\s*[,.;:—–-]\s+\S", re.I)


def _leading_boolean(s: str) -> str | None:
    """``yes`` or ``no`` for an answer that starts with one and goes on (``No, it is not.``)."""
    m = _SAID.match(unwrap(s))
    return _BOOLEAN[m.group(1).lower()] if m else None


def verify(question: str | None, gold: str | None, response: str | None) -> Verdict:
    if gold is None or not str(gold).strip():
        # the seed's rule: nothing to compare with counts as consistent (the row is not lost, no judge is asked)
        return Verdict(True, "no_gold", "no ground-truth answer: consistent by the seed's rule")
    pred = predicted_answer(response)
    if pred is None:
        return Verdict(False, "no_answer", "the trace gives no final answer")
    options = parse_options(question)
    said = _leading_boolean(pred)
    if said and _word_forms(gold) in (["yes"], ["no"]):  # "No, it is not.": the first word is the answer
        same = said == _word_forms(gold)[0]
        return Verdict(same, "words", f"gold {gold!r} vs predicted {pred!r}: " + ("equivalent" if same else "different"))
    g_items, p_items, signs = item_lists(gold, pred)
    ok: bool | None
    g_letters, p_letters = letter_set(gold, options), letter_set(pred, options)
    if normalize(gold) == normalize(pred) or normalize(rhs(gold)) == normalize(rhs(pred)):
        ok, method = True, "exact"
    elif g_letters and p_letters:
        ok, method = g_letters == p_letters, "set"
    elif p_items and len(p_items) > 1 and not g_items:
        ok, method = one_vs_many(question, gold, pred, p_items, options, _atom)
    elif g_items and p_items:
        ok, method = many_vs_many(g_items, p_items, _atom, ordered=bracketed(gold, "()[]") and not signs,
                                   unordered=signs or (bracketed(gold, "{}") and bracketed(pred, "{}")))
    else:
        ok, method = _atom(gold, pred, options)
    if ok is None:
        ok, method = _bound_match(question, gold, pred) or (ok, method)
    analysis = f"gold {gold!r} vs predicted {pred!r}: " + {True: "equivalent", False: "different", None: "undecided"}[ok]
    return Verdict(ok, method, analysis)


_LARGEST = re.compile(r"\b(?:maximum|max|largest|greatest|highest)\b", re.I)


_SMALLEST = re.compile(r"\b(?:minimum|min|smallest|least|lowest)\b", re.I)


_INEQUALITY = re.compile(r"[<>≤≥]|\\(?:le|ge|leq|geq|lt|gt|leqslant|geqslant)(?![A-Za-z])")


def _bound_match(question: str | None, gold: str, pred: str) -> Decision | None:
    """An extremum asked for, the gold written as its condition (``tan θ₀ ≤ 7μ/2``), the prediction as the
    bound (``arctan(7μ/2)``): the bound solves the condition's boundary for the one symbol the prediction
    lacks (where it occurs once), and the condition holds on the side the question asks for (below a
    maximum, above a minimum; the other symbols set to positive sample values). Anything else stays
    undecided."""
    wants = {"max": bool(question and _LARGEST.search(question)), "min": bool(question and _SMALLEST.search(question))}
    if not any(wants.values()) or len(_INEQUALITY.findall(gold)) != 1 or RELATION.search(rhs(pred)) \
            or len(gold) > 120 or len(pred) > 120:
        return None
    try:
        import sympy
    except ImportError:  # pragma: no cover - comes with math-verify
        return None
    g, p = parse_side(gold), parse_side(pred)
    if not g or not p:
        return None
    cond, bound = g[0], p[0]
    if not isinstance(cond, sympy.core.relational.Relational) or isinstance(cond, (sympy.Eq, sympy.Ne)) \
            or not isinstance(bound, sympy.Expr):
        return None
    free = cond.free_symbols - bound.free_symbols
    if len(free) != 1:
        return None
    x = free.pop()
    boundary = cond.lhs - cond.rhs
    if boundary.count(x) != 1 or sympy.count_ops(boundary) > 40:
        return None  # solved by inverting what wraps the one occurrence; anything else can take sympy minutes
    try:
        roots = sympy.solve(boundary, x)
        if len(roots) != 1 or sympy.simplify(roots[0] - bound) != 0:
            return None
        sample = {s: sympy.Rational(7 + 3 * i, 10) for i, s in enumerate(sorted(bound.free_symbols, key=str))}
        at = float(bound.subs(sample))
        step = 1e-3 * max(1.0, abs(at))
        below, above = (bool(cond.subs({**sample, x: at + d})) for d in (-step, step))
    except Exception:  # sympy gives up in many ways on what it cannot solve or evaluate
        return None
    if (wants["max"] and below and not above) or (wants["min"] and above and not below):
        return True, "bound"
    return None


def pass_rate(question: str | None, gold: str | None, samples: list[tuple[str | None, str | None]]) -> float | None:
    """Share of (text, finish_reason) samples whose answer verifies against ``gold``; truncated ones fail."""
    if not samples or gold is None or not str(gold).strip():
        return None
    passed = sum(
        1 for text, finish in samples if finish != "length" and verify(question, gold, text).consistent is True
    )
    return passed / len(samples)
