"""Units written after a number in an answer: a canonical spelling, and the factor to base units.

``canonical("km/hr")`` → ``"km/h"``; ``to_base("cm^2")`` → ``(dimension, 1e-4)``. Symbols are case
sensitive (``mA`` is not ``MA``); names are not (``Meters`` is ``m``). A unit the table does not know has no
factor (``to_base`` → None): then only the same spelling, up to a plural, counts as the same unit.
"""

from __future__ import annotations

import functools
import math
import re

# base dimensions: L length, M mass, T time, plus quantities compared only with themselves
_Dims = tuple[tuple[str, int], ...]

# symbol → ({dimension: power}, factor to the base unit)
_UNITS: dict[str, tuple[dict[str, int], float]] = {}


def _add(symbols: str, dims: dict[str, int], factor: float) -> None:
    for s in symbols.split():
        _UNITS[s] = (dims, factor)


_L, _M, _T = {"L": 1}, {"M": 1}, {"T": 1}
_add("m", _L, 1.0)
_add("km", _L, 1e3)
_add("cm", _L, 1e-2)
_add("mm", _L, 1e-3)
_add("μm µm um", _L, 1e-6)
_add("nm", _L, 1e-9)
_add("in", _L, 0.0254)
_add("ft", _L, 0.3048)
_add("yd", _L, 0.9144)
_add("mi", _L, 1609.344)
_add("kg", _M, 1.0)
_add("g", _M, 1e-3)
_add("mg", _M, 1e-6)
_add("lb", _M, 0.45359237)
_add("oz", _M, 0.028349523125)
_add("s", _T, 1.0)
_add("ms", _T, 1e-3)
_add("min", _T, 60.0)
_add("h", _T, 3600.0)
_add("day", _T, 86400.0)
_add("week", _T, 604800.0)
_add("L", {"L": 3}, 1e-3)
_add("mL", {"L": 3}, 1e-6)
_add("N", {"M": 1, "L": 1, "T": -2}, 1.0)
_add("kN", {"M": 1, "L": 1, "T": -2}, 1e3)
_add("J", {"M": 1, "L": 2, "T": -2}, 1.0)
_add("kJ", {"M": 1, "L": 2, "T": -2}, 1e3)
_add("mJ", {"M": 1, "L": 2, "T": -2}, 1e-3)
_add("MJ", {"M": 1, "L": 2, "T": -2}, 1e6)
_add("W", {"M": 1, "L": 2, "T": -3}, 1.0)
_add("kW", {"M": 1, "L": 2, "T": -3}, 1e3)
_add("Pa", {"M": 1, "L": -1, "T": -2}, 1.0)
_add("kPa", {"M": 1, "L": -1, "T": -2}, 1e3)
_add("MPa", {"M": 1, "L": -1, "T": -2}, 1e6)
_add("Hz", {"T": -1}, 1.0)
_add("kHz", {"T": -1}, 1e3)
_add("MHz", {"T": -1}, 1e6)
_add("V", {"V": 1}, 1.0)
_add("mV", {"V": 1}, 1e-3)
_add("kV", {"V": 1}, 1e3)
_add("A", {"A": 1}, 1.0)
_add("mA", {"A": 1}, 1e-3)
_add("Ω", {"Ω": 1}, 1.0)
_add("kΩ", {"Ω": 1}, 1e3)
_add("MΩ", {"Ω": 1}, 1e6)
_add("deg", {"angle": 1}, 1.0)
_add("rad", {"angle": 1}, 180.0 / math.pi)
_add("$", {"money": 1}, 1.0)
_add("¢", {"money": 1}, 0.01)

# names (any case, singular or plural) → symbols
_NAMES = {
    "meter": "m", "metre": "m", "kilometer": "km", "kilometre": "km", "centimeter": "cm", "centimetre": "cm",
    "millimeter": "mm", "millimetre": "mm", "inch": "in", "inches": "in", "foot": "ft", "feet": "ft",
    "yard": "yd", "mile": "mi", "kilogram": "kg", "gram": "g", "milligram": "mg", "pound": "lb", "lbs": "lb",
    "ounce": "oz", "second": "s", "sec": "s", "secs": "s", "minute": "min", "mins": "min", "hour": "h",
    "hr": "h", "hrs": "h", "day": "day", "week": "week", "liter": "L", "litre": "L", "l": "L",
    "milliliter": "mL", "millilitre": "mL", "ml": "mL", "newton": "N", "kilonewton": "kN", "joule": "J",
    "kilojoule": "kJ", "watt": "W", "kilowatt": "kW", "pascal": "Pa", "kilopascal": "kPa", "hertz": "Hz",
    "volt": "V", "millivolt": "mV", "kilovolt": "kV", "ampere": "A", "amp": "A", "milliampere": "mA",
    "ohm": "Ω", "kiloohm": "kΩ", "megaohm": "MΩ", "°": "deg", "degree": "deg", "radian": "rad",
    "dollar": "$", "usd": "$", "cent": "¢",
}
_POWER_WORDS = {"square": 2, "sq": 2, "cubic": 3, "cu": 3}
_SUPERSCRIPTS = str.maketrans({"²": "^2", "³": "^3"})


def _symbol(token: str) -> str:
    """One unit word → its symbol when known (``Meters`` → ``m``), else ``?`` and the word in lower case,
    singular (``Apples`` → ``?apple``)."""
    if token in _UNITS:
        return token
    low = token.lower()
    for word in (low, low[:-1] if low.endswith("s") else low, low[:-2] if low.endswith("es") else low):
        if word in _NAMES:
            return _NAMES[word]
    # an unknown word (a count noun, a unit the table lacks) never reads as a known symbol: "?" in front
    return "?" + (low[:-1] if len(low) > 3 and low.endswith("s") and not low.endswith("ss") else low)


def _factors(side: str) -> list[tuple[str, int]] | None:
    """``square cm`` → [("cm", 2)], ``kg m^2`` → [("kg", 1), ("m", 2)]; None when not a product of units."""
    out: list[tuple[str, int]] = []
    power = 1
    for token in re.split(r"[\s*·.]+", side.strip()):
        if not token:
            continue
        if token.lower() in _POWER_WORDS:
            power = _POWER_WORDS[token.lower()]
            continue
        m = re.fullmatch(r"(°[CF]|[^\W\d_]+|°|\$|¢)(?:\^\{?(-?\d)\}?)?", token)
        if not m:
            return None
        out.append((_symbol(m.group(1)), power * int(m.group(2) or 1)))
        power = 1
    return out or None


@functools.lru_cache(maxsize=1024)
def _parsed(unit: str) -> tuple[tuple[str, int], ...] | None:
    text = unit.translate(_SUPERSCRIPTS).replace("\\", "").strip()
    text = re.sub(r"\s+per\s+", "/", text)
    sides = text.split("/")
    if len(sides) > 2:
        return None
    top = _factors(sides[0])
    bottom = _factors(sides[1]) if len(sides) == 2 else []
    if top is None or bottom is None:
        return None
    powers: dict[str, int] = {}
    for symbol, p in top + [(s, -p) for s, p in bottom]:
        powers[symbol] = powers.get(symbol, 0) + p
    return tuple(sorted((s, p) for s, p in powers.items() if p))


def canonical(unit: str) -> str | None:
    """A unit's canonical spelling (``km/hr`` and ``kilometers per hour`` → the same), None if unreadable."""
    parsed = _parsed(unit)
    return None if parsed is None else " ".join(f"{s}^{p}" for s, p in parsed)


def to_base(unit: str) -> tuple[_Dims, float] | None:
    """(dimension, factor to base units) of a unit made of known units only; None otherwise."""
    parsed = _parsed(unit)
    if not parsed:
        return None
    dims: dict[str, int] = {}
    factor = 1.0
    for symbol, power in parsed:
        if symbol not in _UNITS:
            return None
        unit_dims, unit_factor = _UNITS[symbol]
        for d, p in unit_dims.items():
            dims[d] = dims.get(d, 0) + p * power
        factor *= unit_factor ** power
    return tuple(sorted((d, p) for d, p in dims.items() if p)), factor


__all__ = ["canonical", "to_base"]
