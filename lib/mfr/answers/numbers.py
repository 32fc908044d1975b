"""Numbers, units and rounding: a written quantity (thousands separators, scientific notation, currency,
number words, roman numerals, a unit after it) to a value, two quantities compared (units converted, a
rounded value against an exact one), and clock times.
"""

from __future__ import annotations

import math
import re

from mfr.answers.normalize import TEXT_COMMAND, unwrap
from mfr.answers.symbolic import parse_side
from mfr.answers.units import canonical, to_base
from mfr.answers.verdict import Decision

NUM = r"[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


NUMBER = re.compile(f"^{NUM}$")


_UNIT_LETTERS = re.compile(r"\\(mu|Omega)(?![A-Za-z])\s*")


# "kΩ", "μm", "N·m" as well; μ alone is a coefficient (2μ), not a unit
_UNIT_WORD = r"(?:[A-Za-zΩ]|[μµ](?=[A-Za-z]))[A-Za-zΩ/²³^0-9.\-{}·]*"


_UNIT = f"(?:%|°\\s*[CF]\\b|°|degrees?|{_UNIT_WORD}(?:\\s+{_UNIT_WORD})?(?:\\s+per\\s+{_UNIT_WORD})?)"


# a whole number first ("6.02e23 molecules"), else anything ending in a digit ("x_1 = 5 cm" keeps its old reading)
NUMBER_UNIT = re.compile(f"^({NUM})\\s*{_UNIT}$")


_UNIT_TAIL = re.compile(f"^(.*?\\d)\\s*{_UNIT}$")


# a × 10^b, a \times 10^{b}, a·10^b → a e b
_TIMES_TEN = re.compile(r"^(?:([-+]?[\d.,]+)\s*(?:\\times|\\cdot|×|·|\*)\s*)?10\s*\^\s*\{?\s*([-+]?\d+)\s*\}?")


_VARIABLES = {"x", "y", "z", "n", "i"}


_CURRENCY = re.compile(r"^(\\\$|\$|€|£|¥|₹|Rs\.?|USD)\s*")


_DOLLARS = {"\\$", "$", "USD"}  # a dollar sign in front is the unit "$" (25 cents = \$0.25)


_ROMAN_NUMERALS = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X",
                   "XI", "XII", "XIII", "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX"]


_ROMAN = {r: i + 1 for i, r in enumerate(_ROMAN_NUMERALS) if len(r) > 1}


# thousands set apart by spaces (after _SPACING made every space one): "1 000", "12 500 000"
_SPACED_THOUSANDS = re.compile(r"^-?\d{1,3}(?: \d{3})+(?=$|[.\s%])")


NUMBER_WORDS = {w: i for i, w in enumerate([
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"])}


def _number(s: str) -> tuple[float, bool] | None:
    """(value, is_percent) of a plain number, units and degree signs dropped; fractions a/b too."""
    q = quantity(s)
    return None if q is None else (q[0], q[1])


_SPACING = re.compile(r"\s*(?:\\[,;: ]|~)\s*|\s+")


def quantity(s: str) -> tuple[float, bool, str | None] | None:
    """(value, is_percent, unit as written or None) of a plain number with an optional unit after it
    (a dollar sign in front is the unit ``$``); fractions a/b too."""
    t = unwrap(s).replace("−", "-").replace("\\%", "%").replace("^\\circ", "°").replace("^{\\circ}", "°").strip()
    t = _SPACING.sub(" ", TEXT_COMMAND.sub(r" \1", t)).strip()  # 5\,\text{m/s} → 5 m/s
    t = _UNIT_LETTERS.sub(lambda m: "μ" if m.group(1) == "mu" else "Ω", t)  # 2 \mu m → 2 μm, 5 \Omega → 5 Ω
    if t.lower() in NUMBER_WORDS:  # "two" for 2: a whole answer spelt out
        return float(NUMBER_WORDS[t.lower()]), False, None
    if t in _ROMAN:  # "III" for 3 (numbered items, quadrants); a single letter is a name, not a numeral
        return float(_ROMAN[t]), False, None
    t = _SPACED_THOUSANDS.sub(lambda m: m.group().replace(" ", ""), t)  # 1 000 000
    currency = _CURRENCY.match(t)
    unit = "$" if currency and currency.group(1) in _DOLLARS else None
    t = t[currency.end():] if currency else t
    t = _TIMES_TEN.sub(lambda m: f"{m.group(1) or 1}e{m.group(2)}", t)
    percent = t.endswith("%")
    m = NUMBER_UNIT.match(t) or _UNIT_TAIL.match(t)
    if m and not NUMBER.match(t):
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
        if NUMBER.match(t):
            return float(t.replace(",", "")), percent, unit
    except (ValueError, ZeroDivisionError):
        return None
    return None


def numbers_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def num_match(g: str, p: str) -> Decision | None:
    """Two numbers compared (None when either side is not a number)."""
    gn, pn = quantity(g), quantity(p)
    if gn is None or pn is None:
        return None
    (gv, gp, gu), (pv, pp, pu) = gn, pn
    if gu and pu:
        by_unit = _unit_match(gv, gu, pv, pu)
        if by_unit is not None:
            return by_unit
    if numbers_equal(gv, pv):
        return True, "numeric"
    # 50% and 0.5 state the same value
    if gp != pp and numbers_equal(gv / 100 if gp else gv, pv / 100 if pp else pv):
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


def _unit_match(gv: float, gu: str, pv: float, pu: str) -> Decision | None:
    """Two quantities in different units: converted when both units are known (``10 m`` and ``1000 cm``),
    else undecided; None when the units are the same (the numbers decide)."""
    same = canonical(gu)
    if same is not None and same == canonical(pu):
        return None
    gb, pb = to_base(gu), to_base(pu)
    if gb is None or pb is None or gb[0] != pb[0]:
        return None, "units"  # a unit the table lacks, or another quantity: not for rules to say
    a, b = gv * gb[1], pv * pb[1]
    if numbers_equal(a, b):
        return True, "units"
    # within 2% after a conversion is a rounding the rules do not judge (30° and 0.52 rad)
    return (None if math.isclose(a, b, rel_tol=0.02) else False), "units"


_PLAIN_DECIMAL = re.compile(r"[-+]?(\d[\d,]*)?(?:\.(\d*))?")


def _written_number(s: str) -> str:
    """The answer as written, a unit after a whole number dropped (``2.50 m`` → ``2.50``)."""
    t = unwrap(s)
    m = NUMBER_UNIT.match(t)
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
    parsed = parse_side(s)
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


def approx_match(g: str, p: str) -> Decision | None:
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


_CLOCK = re.compile(r"^(\d{1,2}):([0-5]\d)([ap]m)?$")


def clock_match(ng: str, np_: str) -> Decision | None:
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
