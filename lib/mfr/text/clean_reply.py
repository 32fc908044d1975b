"""Parse the cleaning model's reply: ``No Problem``, or JSON ``{"error_type": [...], "corrected_text": "..."}``.

Replies come with think blocks, code fences, prose around the JSON, single quotes or a trailing comma;
all of these parse. Anything else is ``parsed=False`` and the caller keeps the rule-cleaned text.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

ERROR_TYPES = ("translation", "irrelevant content", "non-answer question", "low-quality instruction")
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_NO_PROBLEM = re.compile(r"^\W*no\W+problems?\W*$", re.I)
_NO_PROBLEM_LOOSE = re.compile(r"\bno\s+problems?\b", re.I)


@dataclass
class CleanReply:
    parsed: bool
    no_problem: bool = False
    error_types: list[str] = field(default_factory=list)
    corrected_text: str | None = None

    @property
    def unsuitable(self) -> bool:
        return "non-answer question" in self.error_types


def _error_type(raw: object) -> str | None:
    t = re.sub(r"[\s_\-]+", " ", str(raw)).strip().lower()
    if not t:
        return None
    if t.startswith("translat") or t in ("non english", "language"):
        return "translation"
    if "irrelevant" in t:
        return "irrelevant content"
    if "non answer" in t or "unanswerable" in t or "not answerable" in t or "non reasoning" in t:
        return "non-answer question"
    if "instruction" in t:
        return "low-quality instruction"
    return t


def _json_objects(text: str) -> list[str]:
    """Balanced ``{...}`` spans, outermost first, strings respected."""
    spans, depth, start, quote, escaped = [], 0, -1, "", False
    for i, ch in enumerate(text):
        if quote:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quote:
                quote = ""
            continue
        if ch in "\"'" and depth > 0:
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _load(obj: str) -> dict | None:
    for attempt in (obj, re.sub(r",\s*([}\]])", r"\1", obj)):
        try:
            value = json.loads(attempt)
        except ValueError:
            try:
                value = ast.literal_eval(attempt)
            except Exception:
                continue
        if isinstance(value, dict):
            return value
    return None


def parse_clean_reply(reply: str | None) -> CleanReply:
    if reply is None:
        return CleanReply(parsed=False)
    text = _THINK.sub("", reply)
    if "</think>" in text:  # an opening tag the server stripped: keep what follows the close
        text = text.rsplit("</think>", 1)[1]
    text = text.strip()
    candidates = _FENCE.findall(text) + [text]
    for cand in candidates:
        for obj in _json_objects(cand):
            value = _load(obj)
            if value is None:
                continue
            keys = {str(k).lower().replace("-", "_").replace(" ", "_"): v for k, v in value.items()}
            types = keys.get("error_type", keys.get("error_types", []))
            if isinstance(types, str):
                types = [types]
            corrected = keys.get("corrected_text")
            if not isinstance(types, list) or (corrected is not None and not isinstance(corrected, str)):
                continue
            kinds = [k for k in (_error_type(t) for t in types) if k]
            if not kinds and not corrected:
                return CleanReply(parsed=True, no_problem=True)
            return CleanReply(parsed=True, error_types=kinds, corrected_text=corrected.strip() if corrected else None)
    if _NO_PROBLEM.match(text) or (len(text) < 80 and _NO_PROBLEM_LOOSE.search(text)):
        return CleanReply(parsed=True, no_problem=True)
    return CleanReply(parsed=False)
