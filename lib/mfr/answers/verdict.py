"""A verdict on one row, and the (verdict, method) a single comparison gives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    consistent: bool | None
    method: str
    analysis: str


# (verdict, method) of one comparison; a verdict of None: the rules cannot decide
Decision = tuple[bool | None, str]

# how two single answers compare (``verify._atom``), handed to the option and part rules that compare contents
Compare = Callable[[str, str, dict[str, str]], Decision]
