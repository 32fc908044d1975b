"""Symbolic comparison through math-verify (optional at run time): both sides parsed, then compared.
"""

from __future__ import annotations

import functools
import threading

from mfr.answers.normalize import plain_to_latex, rhs, strip_hats


def symbolic_match(g: str, p: str) -> bool | None:
    """math-verify on both sides (gold first); None when either side does not parse."""
    try:
        from math_verify import verify
    except ImportError:  # pragma: no cover - an optional dependency at run time
        return None
    main = threading.current_thread() is threading.main_thread()
    gold, pred = parse_side(g), parse_side(p)
    if not gold or not pred:
        return None
    try:
        return bool(verify(gold, pred, **({} if main else {"timeout_seconds": None})))
    except Exception:
        return None


def parse_side(s: str) -> list | None:
    """One side of a comparison as math-verify reads it: the value right of ``name =``, hats off, ``sqrt()``
    and ``√`` as LaTeX."""
    return _parse(plain_to_latex(strip_hats(rhs(s))))


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
