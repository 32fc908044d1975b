"""Answers as written, made comparable: wrappers (``\\boxed``, ``$…$``, "the answer is") off, the value right
of ``name =``, LaTeX spellings of relations, sets, arrows and scripts made one, and what an answer looks like
(prose, a relation, plain words, point names).
"""

from __future__ import annotations

import functools
import re
import unicodedata

from mfr.answers.boxed import closing_braces

# LaTeX text commands around words or units: their content is what is written
TEXT_COMMAND = re.compile(r"\\(?:text|mathrm|mathbf|textbf|operatorname|rm)\s*\{([^{}]*)\}")


_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{")


# "≈ 3.14", "about 5": the value stated, the hedge dropped (only in front of a number)
_ABOUT = re.compile(r"^(?:≈|\\approx|~|about|approximately|approx\.?|around|roughly|nearly)\s*(?=[-+.\d\\$])", re.I)


def unwrap(s: str) -> str:
    s = s.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("$").strip()
        for pre, post in (("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(pre) and s.endswith(post):
                s = s[len(pre):-len(post)].strip()
        wrapper = _WRAPPER.match(s)
        if wrapper and closing_braces(s).get(wrapper.end() - 1) == len(s) - 1:  # the whole answer is wrapped
            s = s[wrapper.end():-1].strip()
        s = re.sub(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:：]?\s*", "", s, flags=re.I)
        s = _ABOUT.sub("", s)
        s = s.rstrip(".。")
        if s == before:
            break
    return s


LHS = re.compile(r"^\s*[A-Za-z\\][\w\\{}^ ,()θωμ₀-₉]{0,24}?\s*=(?!=)")


# "x ∈ (0, 1)": the set a name belongs to is its value
_MEMBER = re.compile(r"^\s*[A-Za-z]\w{0,3}\s*(?:\\in(?![A-Za-z])|∈)\s*")


def rhs(s: str) -> str:
    """``P_1 = P_2 = expr`` → ``expr``, ``x ∈ (0, 1)`` → ``(0, 1)``: the name on the left is not part of the value."""
    t = unwrap(s)
    member = _MEMBER.match(t)
    if member:
        return t[member.end():].strip()
    while True:
        m = LHS.match(t)
        if not m or "=" in t[m.end():m.end() + 1]:
            return t
        t = t[m.end():].strip()


# statements written with LaTeX names or with the signs themselves (△ABC ∽ △DEF, AB ∥ CD) read alike
_RELATION_SIGNS = {
    "triangle": "△", "sim": "∽", "backsim": "∽", "parallel": "∥", "perp": "⊥", "angle": "∠", "cong": "≅",
    "le": "≤", "leq": "≤", "leqslant": "≤", "ge": "≥", "geq": "≥", "geqslant": "≥", "ne": "≠", "neq": "≠",
    "emptyset": "∅", "varnothing": "∅",
}


# number sets: \mathbb{R}, \mathbb R and ℝ alike
_NUMBER_SETS = re.compile(r"\\mathbb\s*\{?\s*([NZQRC])\s*\}?")


_NUMBER_SET_SIGNS = {"N": "ℕ", "Z": "ℤ", "Q": "ℚ", "R": "ℝ", "C": "ℂ"}


_RELATION_NAMES = re.compile(r"\\(" + "|".join(sorted(_RELATION_SIGNS, key=len, reverse=True)) + r")(?![A-Za-z])")


# circled option numbers (①, ②) as the digits they stand for; sub- and superscript digits as _2 and ^2
_CIRCLED = {0x2460 + i: str(i + 1) for i in range(9)}


_SCRIPTS = {**{0x2080 + i: f"_{i}" for i in range(10)},
            **{ord(c): f"^{i}" for i, c in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}}


_ARROW = re.compile(r"-+>|=>|⟶|\\(?:to|rightarrow|longrightarrow)(?![A-Za-z])")


_SEGMENT = re.compile(r"\\overline\s*\{\s*([A-Z]{2,3})\s*\}")


@functools.lru_cache(maxsize=4096)
def normalize(s: str) -> str:
    """A canonical spelling: wrappers off, LaTeX and unicode variants unified, spacing removed."""
    s = unwrap(s)
    s = TEXT_COMMAND.sub(r"\1", s)
    s = _ARROW.sub("→", s)  # a path or a mapping: A -> B, A \to B, A \rightarrow B (before \right goes)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.translate(_CIRCLED).translate(_SCRIPTS).replace("\\pm", "±").replace("\\mp", "∓")
    s = re.sub(r"([_^])\{(\w)\}", r"\1\2", s)  # x^{2} → x^2
    s = re.sub(r"_(\d)", r"\1", s)  # H_2O, H₂O and H2O; x_1 and x1
    s = s.replace("∼", "∽").replace("−", "-").replace("–", "-").replace("×", "*").replace("\\times", "*").replace("\\cdot", "*")
    s = s.replace("π", "\\pi").replace("^\\circ", "°").replace("^{\\circ}", "°").replace("\\circ", "°")
    s = s.replace("\\,", "").replace("\\ ", "").replace("\\!", "")
    s = s.replace("∞", "\\infty").replace("\\{", "{").replace("\\}", "}")
    s = _RELATION_NAMES.sub(lambda m: _RELATION_SIGNS[m.group(1)], s)
    s = _NUMBER_SETS.sub(lambda m: _NUMBER_SET_SIGNS[m.group(1)], s)
    s = re.sub(r"\b([ap])\.?\s*m\.?(?=\s*$|\W)", r"\1m", s, flags=re.I)  # 3:45 p.m. → 3:45 pm
    s = _SEGMENT.sub(r"\1", s)  # \overline{AB}: the segment AB (a bar over one letter, a conjugate, stays)
    s = plain_to_latex(strip_hats(s))
    s = re.sub(r"\s+", "", s)
    return s.lower()


# a symbolic "different" is trusted only for plain expressions: statements (relations, congruence,
# similarity) and long identities parse in more ways than math-verify compares, so there it is undecided
_FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "max", "min", "lim", "arcsin", "arccos",
              "arctan", "sinh", "cosh", "tanh", "det", "gcd", "lcm", "mod"}


def prose(s: str) -> bool:
    """Words in the answer (``1 hour 30 minutes``): math-verify reads them as products of symbols. Capital
    runs (``ABC``, a triangle's name) are names of points, not words."""
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", " ", unwrap(s)))
    return any(w.lower() not in _FUNCTIONS and not w.isupper() for w in words)


RELATION = re.compile(r"[=<>≤≥∼≅∥⊥≈]|\\(sim|cong|parallel|perp|leq?|geq?|neq|approx|equiv)\b")


def bracketed(s: str, pairs: str) -> bool:
    """Does the whole answer sit in one of the bracket pairs (``"()[]"``: a tuple or an interval)?"""
    t = normalize(s)
    return len(t) >= 2 and any(t[0] == pairs[i] and t[-1] == pairs[i + 1] for i in range(0, len(pairs), 2))


def strip_hats(s: str) -> str:
    """Unit-vector hats off (``x̂``, ``ẑ`` and ``\\hat{x}`` alike): they name axes, not operations."""
    s = re.sub(r"\\hat\s*\{(\w)\}", r"\1", s)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", s).replace("\u0302", ""))


# function names written without a backslash: "tan(x)" would read as the product t·a·n·x
_PLAIN_FUNCTION = re.compile(r"(?<![\\A-Za-z])(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?=\s*\()")


def plain_to_latex(s: str) -> str:
    """``sqrt(x)``, ``√x`` → ``\\sqrt{x}``, ``tan(x)`` → ``\\tan(x)``, ``x²`` → ``x^2`` (plain-text answers next to
    LaTeX ones)."""
    s = _PLAIN_FUNCTION.sub(r"\\\1", s).translate(_SCRIPTS)  # θ₀ → θ_0, x² → x^2: unparsable as they are
    s = re.sub(r"√\s*([\w.]+|\{[^{}]*\})", lambda m: "\\sqrt{" + m.group(1).strip("{}") + "}", s.replace("√(", "sqrt("))
    out, i = "", 0
    while True:
        j = s.find("sqrt(", i)
        if j < 0 or (j > 0 and s[j - 1] == "\\"):
            return out + s[i:]
        depth, k = 1, j + 5
        while k < len(s) and depth:
            depth += {"(": 1, ")": -1}.get(s[k], 0)
            k += 1
        if depth:
            return out + s[i:]
        out += s[i:j] + "\\sqrt{" + plain_to_latex(s[j + 5:k - 1]) + "}"
        i = k


WORDS = re.compile(r"[A-Za-z][A-Za-z\s\-']+")


POINT_NAMES = re.compile(r"[A-Z]{2,4}")


def name_left(s: str) -> str | None:
    """The name left of ``=`` as written (``v_0`` of ``v_0 = 2R\\omega/5``); None for a bare value."""
    m = LHS.match(unwrap(s))
    return m.group()[:-1].strip() or None if m else None


def quantity_name(s: str) -> str | None:
    """``name_left``, normalised (``v_{0}`` and ``v_0`` alike)."""
    name = name_left(s)
    return normalize(name) if name else None
