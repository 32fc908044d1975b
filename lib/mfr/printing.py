"""Spark values and rows as text: JSON for machines, boxed tables for people (CLI and run summaries)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
from collections.abc import Sequence
from typing import Any


def json_value(value: Any) -> Any:
    """A Spark value as JSON: binary → base64, timestamps → ISO 8601, decimals → float."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    return value


def rows_as_json(rows: list[Any]) -> str:
    return json.dumps([json_value(r.asDict(recursive=True)) for r in rows], ensure_ascii=False, indent=1)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], width: int = 48) -> str:
    def cell(v: Any) -> str:
        v = json_value(v)
        s = "NULL" if v is None else (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else str(v))
        s = s.replace("\n", "\\n")
        return s if len(s) <= width else s[: width - 1] + "…"

    body = [[cell(v) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in body]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [line, "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |", line]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in body]
    out.append(line)
    return "\n".join(out)
