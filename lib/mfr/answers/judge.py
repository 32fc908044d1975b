"""The LLM judge's reply: its last ``JUDGMENT: EQUIVALENT|DIFFERENT`` line.
"""

from __future__ import annotations

import re

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
