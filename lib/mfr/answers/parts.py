"""Answers in several parts: lists, tuples and sets split into items, ``±`` as two answers, named parts
(``v_0 = …``) and the question part an answer is labelled with. Item comparisons are passed in (``same``).
"""

from __future__ import annotations

import re

from mfr.answers.normalize import LHS, bracketed, name_left, normalize, quantity_name, rhs, unwrap
from mfr.answers.numbers import NUMBER, NUMBER_UNIT
from mfr.answers.options import LETTER
from mfr.answers.verdict import Compare, Decision

_AND_PARTS = re.compile(r"\S+(?:\s+(?:and|or)\s+\S+)+")


_SPACED = re.compile(r"[ \t]{2,}|\s*\n\s*")


def _split_items(s: str) -> list[str] | None:
    t = re.sub(r"\\[,;:!]", " ", unwrap(s))  # LaTeX spacing (5\,\text{m}) separates nothing
    if NUMBER_UNIT.match(t.strip()) or NUMBER.match(t.strip()):
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


def _expand_chains(items: list[str]) -> list[str]:
    """``P_1 = P_2 = v`` states two answers: one copy of ``v`` per name on the left."""
    out = []
    for item in items:
        names = 0
        t = unwrap(item)
        while (m := LHS.match(t)) is not None:
            names += 1
            t = t[m.end():].strip()
        out += [item] * max(1, names)
    return out


# more parts than this are not compared one by one (a list that long is not one question's answer)
_MAX_PARTS = 16


def one_vs_many(question: str | None, gold: str, pred: str, parts: list[str], options: dict[str, str],
                compare: Compare) -> Decision:
    """Several answers against one gold: matching one part is not decidable by rules, unless the gold names
    its quantity (``v_0 = …``) and the answers to it (parts with the same name, or the answer labelled with
    the question's part that asks for it) all agree or all disagree with the gold's value."""
    if len(parts) > _MAX_PARTS:
        return None, "parts"
    name = quantity_name(gold)
    if name:  # the names agree: the values alone are compared
        named = [compare(rhs(gold), rhs(part), options)[0] for part in parts if quantity_name(part) == name]
        if named and (all(m is True for m in named) or all(m is False for m in named)):
            return named[0], "named_part"
        # the labelled answer may hold answers to the part's other questions ("μg/2, No"): one item matches
        items = [] if named else [compare(rhs(gold), x, options)[0] for x in _answer_to_asking_part(question, gold, pred)]
        if items and None not in items and items.count(True) <= 1:
            return any(items), "named_part"
    matches = [compare(gold, part, options)[0] for part in parts]
    return (None if any(m is not False for m in matches) else False), "parts"


# "(a) …" at the start of a line of the question; "(b)" anywhere in the answer
_QUESTION_PART = re.compile(r"^\s*\(([a-h])\)\s", re.M)


_ANSWER_PART = re.compile(r"\(([a-h])\)\s*")


def _answer_to_asking_part(question: str | None, gold: str, pred: str) -> list[str]:
    """The items of the answer labelled with the one question part that mentions the gold's name (``A`` in
    "(b) What is the maximum acceleration A …?", answered "(b) μg/2, No"); none when no single part does."""
    name = name_left(gold)
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
    labels = list(_ANSWER_PART.finditer(unwrap(pred)))
    if len(asking) != 1 or [m.group(1) for m in labels].count(asking[0]) != 1:
        return []
    at = next(i for i, m in enumerate(labels) if m.group(1) == asking[0])
    answer = unwrap(pred)[labels[at].end():labels[at + 1].start() if at + 1 < len(labels) else None]
    return _split_items(answer.strip(" ;,")) or [answer.strip(" ;,")]


def item_lists(gold: str, pred: str) -> tuple[list[str] | None, list[str] | None, bool]:
    """Both sides' items (``_split_items``), and whether one side's are the two signs of a ``±``: ``±1``
    against ``1 or -1`` is two answers written as one, in either order (not against a point or an interval)."""
    g_items, p_items = _split_items(gold), _split_items(pred)
    if p_items and len(p_items) == 2 and not g_items and not bracketed(pred, "()[]"):
        g_items = _plus_minus_items(gold)
        return g_items, p_items, g_items is not None
    if g_items and len(g_items) == 2 and not p_items and not bracketed(gold, "()[]"):
        p_items = _plus_minus_items(pred)
        return g_items, p_items, p_items is not None
    return g_items, p_items, False


def _plus_minus_items(s: str) -> list[str] | None:
    """``±1`` → [``+1``, ``-1``], ``x = 3 \\pm \\sqrt{2}`` → both signs; None without exactly one ±."""
    t = unwrap(s).replace("\\pm", "±")
    if t.count("±") != 1 or "∓" in t or "\\mp" in t:
        return None
    return [t.replace("±", "+"), t.replace("±", "-")]


def many_vs_many(g_items: list[str], p_items: list[str], compare: Compare, ordered: bool = True,
                 unordered: bool = False) -> Decision:
    """Tuples, lists and multi-part answers, compared item by item (letters as a set). ``ordered``: the gold
    is a bracketed tuple or interval; ``unordered``: both sides are sets in braces."""
    if len(g_items) != len(p_items):
        g_items = _expand_chains(g_items)
    if len(g_items) != len(p_items) or len(g_items) > _MAX_PARTS:
        return None, "parts"
    if all(LETTER.match(unwrap(x)) for x in g_items + p_items):
        return sorted(x.upper() for x in g_items) == sorted(x.upper() for x in p_items), "set"
    verdicts = [compare(a, b, {})[0] for a, b in zip(g_items, p_items)]
    if all(v is True for v in verdicts):
        return True, "tuple"
    short = len(g_items) <= _MAX_UNORDERED and all(len(x) <= 40 for x in g_items + p_items)
    if any(v is False for v in verdicts) and not ordered and short and _permuted(g_items, p_items, compare):
        # the same items in another order: a set ({1, 2}) is equal; a bare list ("2, 3" for the roots, or
        # parts (a), (b) answered out of order) is left to the judge; a tuple's order stands
        return (True if unordered else None), "set"
    return (False if any(v is False for v in verdicts) else None), "tuple"


# lists longer than this (or with items over 40 characters) are not tried in every order: n² comparisons
_MAX_UNORDERED = 6


def _permuted(g_items: list[str], p_items: list[str], compare: Compare) -> bool:
    """Is each gold item equal to a different predicted item (a perfect matching)?"""
    equal = [[compare(a, b, {})[0] is True for b in p_items] for a in g_items]
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
