"""Does a trace's final answer match the ground truth? Rules first, then symbolic math (pure, offline).

``verify(question, gold, response)`` → ``Verdict(consistent, method, analysis)`` where ``consistent``
is True, False, or None when the rules cannot decide (an LLM judge may decide those later). There is
no loose substring matching: "inverted pentagon" is not "pentagon".
"""

from __future__ import annotations

import functools
import math
import re
import threading
import unicodedata
from dataclasses import dataclass

from mfr.answers.boxed import closing_braces, last_boxed
from mfr.answers.extract import extract_answer
from mfr.answers.units import canonical, to_base
from mfr.text.cot import ANSWER_TAG, final_answer, parse_trace


@dataclass(frozen=True)
class Verdict:
    consistent: bool | None
    method: str
    analysis: str


# (verdict, method) of one comparison; a verdict of None: the rules cannot decide
_Decision = tuple[bool | None, str]

_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:：)]?$")
_OPTION_LETTER = re.compile(r"^(?:option|choice|answer)?\s*[:：]?\s*\(?([A-Ha-h])\)?(?:[.:：)]\s*(.*))?$", re.I)
# "A. x", "(B) x", "[C] x", "D: x", "E．x" (full-width), after a space, a line start or a colon ("选项：A. x");
# the next option starts after a space: "B:15" as it is, a lower-case "b." only with a space after it
_OPTION_MARK = r"[(\[]?(?:[A-H][.)\]：:．]|[a-h][.)\]：:．](?=\s))"
_OPTIONS = re.compile(r"(?:^|(?<=[\s:：]))[(\[]?([A-Ha-h])[.)\]：:．]\s*(.+?)(?=\s+" + _OPTION_MARK + r"|\n|$)")
_NUM = r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NUMBER = re.compile(f"^{_NUM}$")
_UNIT_LETTERS = re.compile(r"\\(mu|Omega)(?![A-Za-z])\s*")
# "kΩ", "μm", "N·m" as well; μ alone is a coefficient (2μ), not a unit
_UNIT_WORD = r"(?:[A-Za-zΩ]|[μµ](?=[A-Za-z]))[A-Za-zΩ/²³^0-9.\-{}·]*"
_UNIT = f"(?:%|°\\s*[CF]\\b|°|degrees?|{_UNIT_WORD}(?:\\s+{_UNIT_WORD})?(?:\\s+per\\s+{_UNIT_WORD})?)"
# a whole number first ("6.02e23 molecules"), else anything ending in a digit ("x_1 = 5 cm" keeps its old reading)
_NUMBER_UNIT = re.compile(f"^({_NUM})\\s*{_UNIT}$")
_UNIT_TAIL = re.compile(f"^(.*?\\d)\\s*{_UNIT}$")
# a × 10^b, a \times 10^{b}, a·10^b → a e b
_TIMES_TEN = re.compile(r"^(?:([-+]?[\d.,]+)\s*(?:\\times|\\cdot|×|·|\*)\s*)?10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?")
_VARIABLES = {"x", "y", "z", "n", "i"}
_CURRENCY = re.compile(r"^(\\\$|\$|€|£|¥|₹|Rs\.?|USD)\s*")
_DOLLARS = {"\\$", "$", "USD"}  # a dollar sign in front is the unit "$" (25 cents = \$0.25)
# LaTeX text commands around words or units: their content is what is written
_TEXT_COMMAND = re.compile(r"\\(?:text|mathrm|mathbf|textbf|operatorname|rm)\s*\{([^{}]*)\}")
_ROMAN_NUMERALS = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X",
                   "XI", "XII", "XIII", "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX"]
_ROMAN = {r: i + 1 for i, r in enumerate(_ROMAN_NUMERALS) if len(r) > 1}
# thousands set apart by spaces (after _SPACING made every space one): "1 000", "12 500 000"
_SPACED_THOUSANDS = re.compile(r"^-?\d{1,3}(?: \d{3})+(?=$|[.\s%])")
_NUMBER_WORDS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}


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


_WRAPPER = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{")


# "≈ 3.14", "about 5": the value stated, the hedge dropped (only in front of a number)
_ABOUT = re.compile(r"^(?:≈|\\approx|~|about|approximately|approx\.?|around|roughly|nearly)\s*(?=[-+.\d\\$])", re.I)


def _unwrap(s: str) -> str:
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


_LHS = re.compile(r"^\s*[A-Za-z\\][\w\\{}^ ,()θωμ₀-₉]{0,24}?\s*=(?!=)")


# "x ∈ (0, 1)": the set a name belongs to is its value
_MEMBER = re.compile(r"^\s*[A-Za-z]\w{0,3}\s*(?:\\in(?![A-Za-z])|∈)\s*")


def rhs(s: str) -> str:
    """``P_1 = P_2 = expr`` → ``expr``, ``x ∈ (0, 1)`` → ``(0, 1)``: the name on the left is not part of the value."""
    t = _unwrap(s)
    member = _MEMBER.match(t)
    if member:
        return t[member.end():].strip()
    while True:
        m = _LHS.match(t)
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
    s = _unwrap(s)
    s = _TEXT_COMMAND.sub(r"\1", s)
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
    s = _plain_to_latex(_strip_hats(s))
    s = re.sub(r"\s+", "", s)
    return s.lower()


def parse_options(question: str | None) -> dict[str, str]:
    """Multiple-choice options ('A. text', '(B) text', 'c: text') → {'A': 'text', …}."""
    if not question:
        return {}
    found: dict[str, str] = {}
    for letter, text in _OPTIONS.findall(question):
        letter = letter.upper()
        if letter not in found and text.strip():
            found[letter] = text.strip().rstrip(",;，；").strip()
    letters = sorted(found)
    # options are consecutive letters starting at A; anything else is prose, not a choice list
    if len(letters) < 2 or letters != [chr(ord("A") + i) for i in range(len(letters))]:
        return {}
    return found


def _as_letter(ans: str, options: dict[str, str]) -> str | None:
    raw = _unwrap(ans).strip()
    m = _OPTION_LETTER.match(raw)
    if m and (not options or m.group(1).upper() in options):
        return m.group(1).upper()
    if options:
        key = normalize(raw)
        hits = [k for k, v in options.items() if normalize(v) == key]
        if len(hits) == 1:
            return hits[0]
    return None


def _number(s: str) -> tuple[float, bool] | None:
    """(value, is_percent) of a plain number, units and degree signs dropped; fractions a/b too."""
    q = _quantity(s)
    return None if q is None else (q[0], q[1])


_SPACING = re.compile(r"\s*(?:\\[,;: ]|~)\s*|\s+")


def _quantity(s: str) -> tuple[float, bool, str | None] | None:
    """(value, is_percent, unit as written or None) of a plain number with an optional unit after it
    (a dollar sign in front is the unit ``$``); fractions a/b too."""
    t = _unwrap(s).replace("−", "-").replace("\\%", "%").replace("^\\circ", "°").replace("^{\\circ}", "°").strip()
    t = _SPACING.sub(" ", _TEXT_COMMAND.sub(r" \1", t)).strip()  # 5\,\text{m/s} → 5 m/s
    t = _UNIT_LETTERS.sub(lambda m: "μ" if m.group(1) == "mu" else "Ω", t)  # 2 \mu m → 2 μm, 5 \Omega → 5 Ω
    if t.lower() in _NUMBER_WORDS:  # "two" for 2: a whole answer spelt out
        return float(_NUMBER_WORDS[t.lower()]), False, None
    if t in _ROMAN:  # "III" for 3 (numbered items, quadrants); a single letter is a name, not a numeral
        return float(_ROMAN[t]), False, None
    t = _SPACED_THOUSANDS.sub(lambda m: m.group().replace(" ", ""), t)  # 1 000 000
    currency = _CURRENCY.match(t)
    unit = "$" if currency and currency.group(1) in _DOLLARS else None
    t = t[currency.end():] if currency else t
    t = _TIMES_TEN.sub(lambda m: f"{m.group(1) or 1}e{m.group(2)}", t)
    percent = t.endswith("%")
    m = _NUMBER_UNIT.match(t) or _UNIT_TAIL.match(t)
    if m and not _NUMBER.match(t):
        written = t[m.end(1):].strip()
        if written in _VARIABLES:  # "2x", "3i": a term, not a number with its unit
            return None
        if written != "%":
            unit = written
        t = m.group(1)
    t = t.strip().rstrip("%").strip()
    frac = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)\s*/\s*(-?[\d.]+)", t)
    try:
        if frac:
            a, b = (frac.group(1), frac.group(2)) if frac.group(1) else (frac.group(3), frac.group(4))
            return float(a) / float(b), percent, unit
        if _NUMBER.match(t):
            return float(t.replace(",", "")), percent, unit
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _numbers_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _num_match(g: str, p: str) -> _Decision | None:
    """Two numbers compared (None when either side is not a number)."""
    gn, pn = _quantity(g), _quantity(p)
    if gn is None or pn is None:
        return None
    (gv, gp, gu), (pv, pp, pu) = gn, pn
    if gu and pu:
        by_unit = _unit_match(gv, gu, pv, pu)
        if by_unit is not None:
            return by_unit
    if _numbers_equal(gv, pv):
        return True, "numeric"
    # 50% and 0.5 state the same value
    if gp != pp and _numbers_equal(gv / 100 if gp else gv, pv / 100 if pp else pv):
        return True, "numeric"
    if gp != pp:
        # 33% or 33.3% against 1/3: the percent is the exact value rounded to its places (two digits at least)
        shown, shown_text, value, value_text = (gv, g, pv * 100, p) if gp else (pv, p, gv * 100, g)
        shown_text = shown_text.replace("\\%", "%")
        d = _decimals(shown_text)
        if d is not None and _decimals(value_text) is None and len(re.sub(r"\D", "", _written_number(shown_text)).lstrip("0")) >= 2:
            return _rounding(shown, value, d, exact=True), "rounded"
    if gp or pp:
        return False, "numeric"
    # 0.33 against 1/3 or 0.3333: the shorter is the other rounded; 1.5 against 1.54 may be a rounding
    # or a different answer: the rules do not say
    for (shown, shown_text), (other, other_text) in (((gv, g), (pv, p)), ((pv, p), (gv, g))):
        d, e = _places(shown_text), _decimals(other_text)
        if d is not None and (e is None or e > d):
            return _rounding(shown, other, d, exact=e is None or e >= d + 2), "rounded"
    return False, "numeric"


def _unit_match(gv: float, gu: str, pv: float, pu: str) -> _Decision | None:
    """Two quantities in different units: converted when both units are known (``10 m`` and ``1000 cm``),
    else undecided; None when the units are the same (the numbers decide)."""
    same = canonical(gu)
    if same is not None and same == canonical(pu):
        return None
    gb, pb = to_base(gu), to_base(pu)
    if gb is None or pb is None or gb[0] != pb[0]:
        return None, "units"  # a unit the table lacks, or another quantity: not for rules to say
    a, b = gv * gb[1], pv * pb[1]
    if _numbers_equal(a, b):
        return True, "units"
    # within 2% after a conversion is a rounding the rules do not judge (30° and 0.52 rad)
    return (None if math.isclose(a, b, rel_tol=0.02) else False), "units"


_PLAIN_DECIMAL = re.compile(r"[-+]?(\d[\d,]*)?(?:\.(\d*))?")


def _written_number(s: str) -> str:
    """The answer as written, a unit after a whole number dropped (``2.50 m`` → ``2.50``)."""
    t = _unwrap(s)
    m = _NUMBER_UNIT.match(t)
    return m.group(1) if m else t


def _decimals(s: str) -> int | None:
    """Decimal places of a plain number as written (a unit after it dropped); None for a fraction, a
    power of ten or anything else."""
    d = _PLAIN_DECIMAL.fullmatch(_written_number(s))
    return None if d is None or not (d.group(1) or d.group(2)) else len(d.group(2) or "")


def _places(s: str) -> int | None:
    """Decimal places of a decimal with two significant digits or more (``0.3`` says too little to round)."""
    d = _decimals(s)
    if not d:
        return None
    significant = re.sub(r"\D", "", _written_number(s)).lstrip("0")
    return d if len(significant) >= 2 else None


def _rounding(shown: float, value: float, places: int, exact: bool) -> bool | None:
    """Is ``shown`` (written to ``places`` decimals) ``value`` rounded? None when only a last-digit slip apart."""
    if exact and math.isclose(round(value, places), shown, abs_tol=10 ** -(places + 3)):
        return True
    return None if abs(shown - value) <= 10 ** -places + 1e-12 else False


def _numeric_value(s: str, pi: float | None = None) -> float | None:
    """The value of a closed-form number (``10\\sqrt{2}``, ``\\pi/2``) through math-verify, with π taken
    as ``pi`` when given; None otherwise."""
    parsed = _parse_side(s)
    if not parsed:
        return None
    try:
        expr = parsed[0]
        if pi is not None:
            import sympy

            if not expr.has(sympy.pi):
                return None
            expr = expr.subs(sympy.pi, sympy.Float(pi))
        return float(expr.evalf()) if getattr(expr, "is_number", False) and expr.is_real else None
    except Exception:
        return None


def _approx_match(g: str, p: str) -> _Decision | None:
    """A decimal against a closed form (``14.14`` and ``10\\sqrt{2}``): the decimal is the value rounded,
    or worked out with π as 3.14 (``113.04`` and ``36\\pi``), as school problems ask."""
    for shown, other in ((g, p), (p, g)):
        d = _places(shown)
        if d is not None and _number(other) is None:
            value = _numeric_value(other)
            if value is not None:
                number = _number(shown)
                assert number is not None
                verdict = _rounding(number[0], value, d, exact=True)
                school = _numeric_value(other, pi=3.14) if verdict is not True else None
                if school is not None and _rounding(number[0], school, d, exact=True):
                    return True, "rounded"
                return verdict, "rounded"
    return None


_AND_PARTS = re.compile(r"\S+(?:\s+(?:and|or)\s+\S+)+")
_SPACED = re.compile(r"[ \t]{2,}|\s*\n\s*")
# a symbolic "different" is trusted only for plain expressions: statements (relations, congruence,
# similarity) and long identities parse in more ways than math-verify compares, so there it is undecided
_FUNCTIONS = {"sin", "cos", "tan", "cot", "sec", "csc", "log", "exp", "max", "min", "lim", "arcsin", "arccos",
              "arctan", "sinh", "cosh", "tanh", "det", "gcd", "lcm", "mod"}


def _prose(s: str) -> bool:
    """Words in the answer (``1 hour 30 minutes``): math-verify reads them as products of symbols. Capital
    runs (``ABC``, a triangle's name) are names of points, not words."""
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", " ", _unwrap(s)))
    return any(w.lower() not in _FUNCTIONS and not w.isupper() for w in words)


_RELATION = re.compile(r"[=<>≤≥∼≅∥⊥≈]|\\(sim|cong|parallel|perp|leq?|geq?|neq|approx|equiv)\b")


def _split_items(s: str) -> list[str] | None:
    t = re.sub(r"\\[,;:!]", " ", _unwrap(s))  # LaTeX spacing (5\,\text{m}) separates nothing
    if _NUMBER_UNIT.match(t.strip()) or _NUMBER.match(t.strip()):
        return None  # "1,000" and "40,000 m": one number with its thousands marked
    if len(t) >= 2 and t[0] + t[-1] in ("()", "[]", "{}"):
        t = t[1:-1]
    seps = ",，;"  # "a, b; c": semicolons separate parts as commas do
    if "," not in t and "，" not in t:
        if ";" in t:
            seps = ";"
        elif _AND_PARTS.fullmatch(t.strip()):  # "5 and 7", "x = 2 or x = 3": two simple answers
            t, seps = re.sub(r"\s+(?:and|or)\s+", "\x00", t.strip()), "\x00"
        elif _SPACED.search(t.strip()):  # parts laid out with runs of spaces or on lines of their own
            t, seps = _SPACED.sub("\x00", t.strip()), "\x00"
        else:
            return None
    parts, depth, cur = [], 0, ""
    for ch in t:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch in seps and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return [p for p in parts if p]


def _bracketed(s: str, pairs: str) -> bool:
    """Does the whole answer sit in one of the bracket pairs (``"()[]"``: a tuple or an interval)?"""
    t = normalize(s)
    return len(t) >= 2 and any(t[0] == pairs[i] and t[-1] == pairs[i + 1] for i in range(0, len(pairs), 2))


def _strip_hats(s: str) -> str:
    """Unit-vector hats off (``x̂``, ``ẑ`` and ``\\hat{x}`` alike): they name axes, not operations."""
    s = re.sub(r"\\hat\s*\{(\w)\}", r"\1", s)
    return unicodedata.normalize("NFC", unicodedata.normalize("NFD", s).replace("\u0302", ""))


def _expand_chains(items: list[str]) -> list[str]:
    """``P_1 = P_2 = v`` states two answers: one copy of ``v`` per name on the left."""
    out = []
    for item in items:
        names = 0
        t = _unwrap(item)
        while (m := _LHS.match(t)) is not None:
            names += 1
            t = t[m.end():].strip()
        out += [item] * max(1, names)
    return out


# function names written without a backslash: "tan(x)" would read as the product t·a·n·x
_PLAIN_FUNCTION = re.compile(r"(?<![\\A-Za-z])(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?=\s*\()")


def _plain_to_latex(s: str) -> str:
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
        out += s[i:j] + "\\sqrt{" + _plain_to_latex(s[j + 5:k - 1]) + "}"
        i = k


def _symbolic(g: str, p: str) -> bool | None:
    """math-verify on both sides (gold first); None when either side does not parse."""
    try:
        from math_verify import verify
    except ImportError:  # pragma: no cover - an optional dependency at run time
        return None
    main = threading.current_thread() is threading.main_thread()
    gold, pred = _parse_side(g), _parse_side(p)
    if not gold or not pred:
        return None
    try:
        return bool(verify(gold, pred, **({} if main else {"timeout_seconds": None})))
    except Exception:
        return None


def _parse_side(s: str) -> list | None:
    """One side of a comparison as math-verify reads it: the value right of ``name =``, hats off, ``sqrt()``
    and ``√`` as LaTeX."""
    return _parse(_plain_to_latex(_strip_hats(rhs(s))))


@functools.lru_cache(maxsize=1024)
def _parse(latex: str) -> list | None:
    """math-verify's parse of one side; None when it is not installed or the text does not parse. Cached:
    one side is often parsed twice (its value, then the symbolic comparison), and a parse can take seconds."""
    try:
        from math_verify import parse
    except ImportError:  # pragma: no cover - an optional dependency at run time
        return None
    # math-verify's timeouts use signal.alarm, which only works on the main thread
    kw = {} if threading.current_thread() is threading.main_thread() else {"parsing_timeout": None}
    try:
        return parse(f"${latex}$", **kw) or None
    except Exception:
        return None


def _atom(g: str, p: str, options: dict[str, str]) -> _Decision:
    ng, np_ = normalize(g), normalize(p)
    if ng == np_ or normalize(rhs(g)) == normalize(rhs(p)):
        return True, "exact"
    named = _GOLD_OPTION.match(_unwrap(g))
    if named and not _LETTER.match(_unwrap(g)):
        return _named_option((named.group(1) or named.group(2)).upper(), named.group(3), p, options)
    gl = _as_letter(g, options) if _LETTER.match(_unwrap(g)) else None
    if gl:
        pl = _as_letter(p, options)
        if pl:
            return pl == gl, "choice"
        if gl in options:  # gold is a letter, the trace answered with the option's content
            opt = options[gl]
            if np_ in _spellings(opt) or normalize(rhs(p)) in _spellings(opt):  # "5" or "x = 5" for option "5"
                return True, "choice_text"
            num = _num_match(opt, p)
            if num is None and rhs(p) != _unwrap(p):
                num = _num_match(opt, rhs(p))
            if num is not None:
                return num[0], "choice_numeric"
            if any(np_ in _spellings(text) for letter, text in options.items() if letter != gl):
                return False, "choice_text"  # the trace named another option's content
            return _option_states(gl, p, options), "choice_text"
        return None, "choice"  # a letter against text, with no options to map it: undecided
    if _LETTER.match(_unwrap(p)):  # the gold is an option's content, the trace answered with a letter
        return _letter_for_content(g, p, options)
    num = _num_match(g, p)
    if num is None and (rhs(g), rhs(p)) != (_unwrap(g), _unwrap(p)):
        num = _num_match(rhs(g), rhs(p))  # "x = 5" against "x = 4"
    if num is not None:
        return num
    if ("°" in ng) != ("°" in np_) and "\\pi" in ng + np_:
        return None, "units"  # degrees against radians: the rules do not convert
    if _POINT_NAMES.fullmatch(_unwrap(g)) and sorted(_unwrap(g)) == sorted(_unwrap(p)):
        return None, "names"  # "CA" for "AC": one segment, a triangle's vertices in another order, or a sequence
    if _WORDS.fullmatch(_unwrap(g)) and _WORDS.fullmatch(_unwrap(p)):
        # both plain words: the same words up to an article, a plural or a subject in front ("it
        # increases"), else different answers ("inverted pentagon" is not "pentagon")
        gw, pw = _word_forms(g), _word_forms(p)
        return gw == pw or "".join(gw) == "".join(pw), "words"  # "north-east" is "northeast"
    clock = _clock_match(ng, np_)
    if clock is not None:
        return clock
    approx = _approx_match(g, p)
    if approx is not None:
        return approx
    sym = _symbolic(g, p)
    if sym is False and (_RELATION.search(g + p) or "→" in ng + np_ or max(len(_unwrap(g)), len(_unwrap(p))) > 40
                         or _prose(g) or _prose(p)):
        sym = None  # statements, paths, long identities and words: math-verify's "different" is not trusted
    if sym is not None:
        return sym, "symbolic"
    return None, "undecided"


_WORDS = re.compile(r"[A-Za-z][A-Za-z\s\-']+")
_POINT_NAMES = re.compile(r"[A-Z]{2,4}")
# a gold answer that names its option: "Option B", "(C) 30°", "D. 12 cm"
_GOLD_OPTION = re.compile(r"^(?:(?i:option|choice)\s*\(?([A-Ha-h])\)?|\(?([A-H])[.)：:．]\s*(.+))$")
_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)([ap]m)?$")


def _named_option(letter: str, text: str | None, p: str, options: dict[str, str]) -> _Decision:
    """A gold that names its option (a letter, maybe the option's text after it) against a prediction."""
    pl = _as_letter(p, options) or (m.group(1).upper() if (m := _LETTER.match(_unwrap(p))) else None)
    if pl:
        return pl == letter, "choice"
    content = options.get(letter) or text
    if not content:
        return None, "choice"
    return _atom(content, p, {})[0], "choice_text"


def _spellings(option: str) -> set[str]:
    """An option's content, normalised, with and without a gloss in brackets after it (``pathos (emotion)``)."""
    head = re.sub(r"\s*\([^()]*\)\s*$", "", option)
    return {normalize(option), normalize(head)} if head.strip() else {normalize(option)}


def _letter_for_content(g: str, p: str, options: dict[str, str]) -> _Decision:
    """A gold written as an option's content (``15 cm``) against a predicted letter: the letter's content
    decides; without options to map the letter, undecided."""
    pl = _as_letter(p, options)
    if not pl or pl not in options:
        return None, "choice"
    if normalize(options[pl]) == normalize(g):
        return True, "choice"
    num = _num_match(g, options[pl])
    if num is not None:
        return num[0], "choice_numeric"
    gl = _as_letter(g, options)
    if gl is not None:
        return gl == pl, "choice"
    return _option_states(pl, g, options), "choice_text"


def _option_states(letter: str, content: str, options: dict[str, str]) -> bool | None:
    """Does option ``letter`` state ``content`` written another way (``\\dfrac{\\sqrt3}{2}``, ``0.866`` for
    ``$\\frac{\\sqrt{3}}{2}$``)? Compared as answers are; False only when ``content`` is another option's."""
    same = _atom(options[letter], content, {})[0]
    if same is True:
        return True
    if same is False and any(_atom(text, content, {})[0] is True for other, text in options.items() if other != letter):
        return False
    return None


def _clock_match(ng: str, np_: str) -> _Decision | None:
    """Two clock times (``2:30``, ``2:30pm``, ``14:30``, normalised); None unless both are times."""
    a, b = _CLOCK.match(ng), _CLOCK.match(np_)
    if not a or not b or int(a.group(1)) > 24 or int(b.group(1)) > 24:
        return None

    def minutes(m: re.Match) -> int:
        h = int(m.group(1)) % 12 + (12 if m.group(3) == "pm" else 0) if m.group(3) else int(m.group(1))
        return h * 60 + int(m.group(2))

    if minutes(a) == minutes(b) or (bool(a.group(3)) != bool(b.group(3)) and a.group(1, 2) == b.group(1, 2)):
        return True, "clock"  # "2:30" and "2:30 pm": the same reading of the clock
    if not a.group(3) and not b.group(3) and int(a.group(1)) * int(b.group(2)) == int(b.group(1)) * int(a.group(2)):
        return None, "clock"  # "10:20" and "20:40" may be ratios
    return False, "clock"


_BOOLEAN = {"yes": "yes", "true": "yes", "correct": "yes", "no": "no", "false": "no", "incorrect": "no"}
_COMPASS = {"ne": "northeast", "nw": "northwest", "se": "southeast", "sw": "southwest"}
_ARTICLE = re.compile(r"^(?:(?:it|this|that|they|he|she)(?:\s+(?:is|are|was|were|will|would))?\s+)?(?:(?:the|a|an)\s+)?", re.I)


def _word_forms(s: str) -> list[str]:
    """Words without a subject or an article in front, each without a plural -s (``the cats`` and ``they
    are cats`` → ``cat``)."""
    words = _ARTICLE.sub("", _unwrap(s).strip()).lower().replace("-", " ").split()
    if len(words) == 1 and words[0] in _BOOLEAN:
        return [_BOOLEAN[words[0]]]
    if len(words) == 1 and words[0] in _COMPASS:
        return [_COMPASS[words[0]]]
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in words]


_SAID = re.compile(r"^(yes|no|true|false)\s*[,.;:—–-]\s+\S", re.I)


def _leading_boolean(s: str) -> str | None:
    """``yes`` or ``no`` for an answer that starts with one and goes on (``No, it is not.``)."""
    m = _SAID.match(_unwrap(s))
    return _BOOLEAN[m.group(1).lower()] if m else None


def _letter_set(s: str, options: dict[str, str]) -> set[str] | None:
    """``AC``, ``A, C``, ``A and C`` → {A, C} when every letter is one of the question's options."""
    t = re.sub(r"[\s,;()]|\band\b", "", _unwrap(s))
    if not options or not re.fullmatch(r"[A-H]{2,}", t):
        return None
    letters = set(t)
    return letters if len(letters) == len(t) and letters <= set(options) else None


# more parts than this are not compared one by one (a list that long is not one question's answer)
_MAX_PARTS = 16


def _one_vs_many(question: str | None, gold: str, pred: str, parts: list[str], options: dict[str, str]) -> _Decision:
    """Several answers against one gold: matching one part is not decidable by rules, unless the gold names
    its quantity (``v_0 = …``) and the answers to it (parts with the same name, or the answer labelled with
    the question's part that asks for it) all agree or all disagree with the gold's value."""
    if len(parts) > _MAX_PARTS:
        return None, "parts"
    name = _quantity_name(gold)
    if name:  # the names agree: the values alone are compared
        named = [_atom(rhs(gold), rhs(part), options)[0] for part in parts if _quantity_name(part) == name]
        if named and (all(m is True for m in named) or all(m is False for m in named)):
            return named[0], "named_part"
        # the labelled answer may hold answers to the part's other questions ("μg/2, No"): one item matches
        items = [] if named else [_atom(rhs(gold), x, options)[0] for x in _answer_to_asking_part(question, gold, pred)]
        if items and None not in items and items.count(True) <= 1:
            return any(items), "named_part"
    matches = [_atom(gold, part, options)[0] for part in parts]
    return (None if any(m is not False for m in matches) else False), "parts"


# "(a) …" at the start of a line of the question; "(b)" anywhere in the answer
_QUESTION_PART = re.compile(r"^\s*\(([a-h])\)\s", re.M)
_ANSWER_PART = re.compile(r"\(([a-h])\)\s*")


def _answer_to_asking_part(question: str | None, gold: str, pred: str) -> list[str]:
    """The items of the answer labelled with the one question part that mentions the gold's name (``A`` in
    "(b) What is the maximum acceleration A …?", answered "(b) μg/2, No"); none when no single part does."""
    name = _name_left(gold)
    if not name:
        return []
    marks = list(_QUESTION_PART.finditer(question or ""))
    texts = {m.group(1): (question or "")[m.end():nxt.start() if nxt else None]
             for m, nxt in zip(marks, marks[1:] + [None])}
    if len(name) == 1:
        mentions = re.compile(rf"(?<![\w\\]){re.escape(name)}(?!\w)")
        asking = [label for label, text in texts.items() if mentions.search(text)]
    else:
        asking = [label for label, text in texts.items() if normalize(name) in normalize(text)]
    labels = list(_ANSWER_PART.finditer(_unwrap(pred)))
    if len(asking) != 1 or [m.group(1) for m in labels].count(asking[0]) != 1:
        return []
    at = next(i for i, m in enumerate(labels) if m.group(1) == asking[0])
    answer = _unwrap(pred)[labels[at].end():labels[at + 1].start() if at + 1 < len(labels) else None]
    return _split_items(answer.strip(" ;,")) or [answer.strip(" ;,")]


def _name_left(s: str) -> str | None:
    """The name left of ``=`` as written (``v_0`` of ``v_0 = 2R\\omega/5``); None for a bare value."""
    m = _LHS.match(_unwrap(s))
    return m.group()[:-1].strip() or None if m else None


def _quantity_name(s: str) -> str | None:
    """``_name_left``, normalised (``v_{0}`` and ``v_0`` alike)."""
    name = _name_left(s)
    return normalize(name) if name else None


def _items(gold: str, pred: str) -> tuple[list[str] | None, list[str] | None, bool]:
    """Both sides' items (``_split_items``), and whether one side's are the two signs of a ``±``: ``±1``
    against ``1 or -1`` is two answers written as one, in either order (not against a point or an interval)."""
    g_items, p_items = _split_items(gold), _split_items(pred)
    if p_items and len(p_items) == 2 and not g_items and not _bracketed(pred, "()[]"):
        g_items = _plus_minus_items(gold)
        return g_items, p_items, g_items is not None
    if g_items and len(g_items) == 2 and not p_items and not _bracketed(gold, "()[]"):
        p_items = _plus_minus_items(pred)
        return g_items, p_items, p_items is not None
    return g_items, p_items, False


def _plus_minus_items(s: str) -> list[str] | None:
    """``±1`` → [``+1``, ``-1``], ``x = 3 \\pm \\sqrt{2}`` → both signs; None without exactly one ±."""
    t = _unwrap(s).replace("\\pm", "±")
    if t.count("±") != 1 or "∓" in t or "\\mp" in t:
        return None
    return [t.replace("±", "+"), t.replace("±", "-")]


def _many_vs_many(g_items: list[str], p_items: list[str], ordered: bool = True, unordered: bool = False) -> _Decision:
    """Tuples, lists and multi-part answers, compared item by item (letters as a set). ``ordered``: the gold
    is a bracketed tuple or interval; ``unordered``: both sides are sets in braces."""
    if len(g_items) != len(p_items):
        g_items = _expand_chains(g_items)
    if len(g_items) != len(p_items) or len(g_items) > _MAX_PARTS:
        return None, "parts"
    if all(_LETTER.match(_unwrap(x)) for x in g_items + p_items):
        return sorted(x.upper() for x in g_items) == sorted(x.upper() for x in p_items), "set"
    verdicts = [_atom(a, b, {})[0] for a, b in zip(g_items, p_items)]
    if all(v is True for v in verdicts):
        return True, "tuple"
    short = len(g_items) <= _MAX_UNORDERED and all(len(x) <= 40 for x in g_items + p_items)
    if any(v is False for v in verdicts) and not ordered and short and _permuted(g_items, p_items):
        # the same items in another order: a set ({1, 2}) is equal; a bare list ("2, 3" for the roots, or
        # parts (a), (b) answered out of order) is left to the judge; a tuple's order stands
        return (True if unordered else None), "set"
    return (False if any(v is False for v in verdicts) else None), "tuple"


# lists longer than this (or with items over 40 characters) are not tried in every order: n² comparisons
_MAX_UNORDERED = 6


def _permuted(g_items: list[str], p_items: list[str]) -> bool:
    """Is each gold item equal to a different predicted item (a perfect matching)?"""
    equal = [[_atom(a, b, {})[0] is True for b in p_items] for a in g_items]
    owner: dict[int, int] = {}  # predicted item → the gold item it is matched to

    def place(i: int, seen: set[int]) -> bool:
        for j, ok in enumerate(equal[i]):
            if ok and j not in seen:
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False

    return all(place(i, set()) for i in range(len(g_items)))


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
    g_items, p_items, signs = _items(gold, pred)
    ok: bool | None
    g_letters, p_letters = _letter_set(gold, options), _letter_set(pred, options)
    if normalize(gold) == normalize(pred) or normalize(rhs(gold)) == normalize(rhs(pred)):
        ok, method = True, "exact"
    elif g_letters and p_letters:
        ok, method = g_letters == p_letters, "set"
    elif p_items and len(p_items) > 1 and not g_items:
        ok, method = _one_vs_many(question, gold, pred, p_items, options)
    elif g_items and p_items:
        ok, method = _many_vs_many(g_items, p_items, ordered=_bracketed(gold, "()[]") and not signs,
                                   unordered=signs or (_bracketed(gold, "{}") and _bracketed(pred, "{}")))
    else:
        ok, method = _atom(gold, pred, options)
    if ok is None:
        ok, method = _bound_match(question, gold, pred) or (ok, method)
    analysis = f"gold {gold!r} vs predicted {pred!r}: " + {True: "equivalent", False: "different", None: "undecided"}[ok]
    return Verdict(ok, method, analysis)


_LARGEST = re.compile(r"\b(?:maximum|max|largest|greatest|highest)\b", re.I)
_SMALLEST = re.compile(r"\b(?:minimum|min|smallest|least|lowest)\b", re.I)
_INEQUALITY = re.compile(r"[<>≤≥]|\\(?:le|ge|leq|geq|lt|gt|leqslant|geqslant)(?![A-Za-z])")


def _bound_match(question: str | None, gold: str, pred: str) -> _Decision | None:
    """An extremum asked for, the gold written as its condition (``tan θ₀ ≤ 7μ/2``), the prediction as the
    bound (``arctan(7μ/2)``): the bound solves the condition's boundary for the one symbol the prediction
    lacks (where it occurs once), and the condition holds on the side the question asks for (below a
    maximum, above a minimum; the other symbols set to positive sample values). Anything else stays
    undecided."""
    wants = {"max": bool(question and _LARGEST.search(question)), "min": bool(question and _SMALLEST.search(question))}
    if not any(wants.values()) or len(_INEQUALITY.findall(gold)) != 1 or _RELATION.search(rhs(pred)) \
            or len(gold) > 120 or len(pred) > 120:
        return None
    try:
        import sympy
    except ImportError:  # pragma: no cover - comes with math-verify
        return None
    g, p = _parse_side(gold), _parse_side(pred)
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


_JUDGMENT = re.compile(r"JUDGMENT\s*[:：]\s*\**\s*(EQUIVALENT|DIFFERENT|NOT\s+EQUIVALENT)", re.I)


def parse_judgment(reply: str | None) -> bool | None:
    """The judge's last ``JUDGMENT: EQUIVALENT|DIFFERENT`` line (think blocks and markdown tolerated)."""
    if not reply:
        return None
    text = reply.split("</think>")[-1]
    found = _JUDGMENT.findall(text) or _JUDGMENT.findall(reply)
    if not found:
        return None
    return found[-1].upper() == "EQUIVALENT"


def pass_rate(question: str | None, gold: str | None, samples: list[tuple[str | None, str | None]]) -> float | None:
    """Share of (text, finish_reason) samples whose answer verifies against ``gold``; truncated ones fail."""
    if not samples or gold is None or not str(gold).strip():
        return None
    passed = sum(
        1 for text, finish in samples if finish != "length" and verify(question, gold, text).consistent is True
    )
    return passed / len(samples)


# Written solutions without a marked answer (the no-answer-check sources: free-form replies to visual
# questions). The seed compares by exact or substring match, else asks its judge; here a match counts only
# where the solution's last sentence states the gold and negates nothing, and everything else is left to the
# judge: such a row is never consistent by default.
_FF_SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+|\n+")
_FF_NEGATION = re.compile(r"\b(?:not|no|never|neither|nor|none|cannot|isn't|aren't|wasn't|weren't|doesn't|don't|"
                       r"didn't|can't|won't|incorrect|wrong)\b|不是|没有|不", re.I)
_FF_WORDS = re.compile(r"[^\W_]+(?:[.'’][^\W_]+)*", re.UNICODE)
_FREE_FORM_MAX_WORDS = 6  # a name, a short phrase, a number with its unit: longer golds go to the judge


def _ff_last_sentence(text: str) -> str:
    parts = [p.strip() for p in _FF_SENTENCE_END.split(re.sub(r"[*_`#>]+", " ", text)) if p and p.strip()]
    return parts[-1] if parts else ""


def _ff_words(s: str) -> list[str]:
    return [w.lower() for w in _FF_WORDS.findall(unicodedata.normalize("NFKC", s))]


def _ff_contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i:i + n] == needle for i in range(len(haystack) - n + 1))


def written_answer_verdict(question: str | None, gold: str | None, response: str | None) -> Verdict:
    """A solution that marks no answer, against the gold: consistent when its last sentence states a short
    gold (its words in order, or for a number the one number the sentence gives, the gold's unit too when it
    has one) and negates nothing; undecided otherwise (the judge decides, when one is set)."""
    if gold is None or not str(gold).strip():
        return Verdict(True, "no_gold", "no ground-truth answer: consistent by the seed's rule")
    last = _ff_last_sentence(parse_trace(response).tail if response else "")
    if not last:
        return Verdict(False, "no_answer", "the trace gives no written solution")
    shown = f"gold {gold!r} vs the solution's last sentence {last[-300:]!r}"
    gold_words = _ff_words(_unwrap(str(gold)))
    if not gold_words or len(gold_words) > _FREE_FORM_MAX_WORDS or _FF_NEGATION.search(last):
        return Verdict(None, "free_form", f"{shown}: undecided")
    value = _quantity(_unwrap(str(gold)))
    if value is not None:
        numbers = [float(m) for m in re.findall(_NUM, last.replace(",", "")) if re.search(r"\d", m)]
        numbers += [float(_NUMBER_WORDS[w]) for w in _ff_words(last) if w in _NUMBER_WORDS]  # "three people"
        unit_ok = value[2] is None or _ff_contains(_ff_words(last), _ff_words(value[2]))
        if len(numbers) == 1 and _numbers_equal(numbers[0], value[0]) and unit_ok:
            return Verdict(True, "free_form", f"{shown}: states the gold's value")
        return Verdict(None, "free_form", f"{shown}: undecided")
    if _ff_contains(_ff_words(last), gold_words):
        return Verdict(True, "free_form", f"{shown}: states the gold")
    return Verdict(None, "free_form", f"{shown}: undecided")
