"""Does a trace's final answer match the ground truth? Rules first, then symbolic math (pure, offline).

``verify(question, gold, response)`` → ``Verdict(consistent, method, analysis)`` where ``consistent``
is True, False, or None when the rules cannot decide (an LLM judge may decide those later). There is
no loose substring matching: "inverted pentagon" is not "pentagon".
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from dataclasses import dataclass

from mfr.text.cot import ANSWER_TAG, final_answer


@dataclass(frozen=True)
class Verdict:
    consistent: bool | None
    method: str
    analysis: str


_BOXED = re.compile(r"\\boxed\s*\{")
_LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:：)]?$")
_OPTION_LETTER = re.compile(r"^(?:option|choice|answer)?\s*[:：]?\s*\(?([A-Ha-h])\)?(?:[.:：)]\s*(.*))?$", re.I)
_OPTIONS = re.compile(r"(?:^|\n|\s)\(?([A-Ha-h])[.)：:]\s*(.+?)(?=(?:\s+\(?[A-Ha-h][.)：:]\s)|\n|$)")
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:,\d{3})*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_UNIT_TAIL = re.compile(r"^(.*?\d)\s*(?:%|°|degrees?|[A-Za-z][A-Za-z/²³^0-9.\-]*(?:\s+[A-Za-z][A-Za-z/²³^0-9.\-]*)?)$")


def _closing_braces(text: str) -> dict[int, int]:
    """Index of each '{' → index of its matching '}' (unmatched ones absent), in one pass."""
    stack: list[int] = []
    pairs: dict[int, int] = {}
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def last_boxed(text: str) -> str | None:
    """Content of the last balanced ``\\boxed{...}`` (linear: a trace full of unclosed boxes costs one pass)."""
    starts = [m.end() for m in _BOXED.finditer(text)]
    if not starts:
        return None
    pairs = _closing_braces(text)
    for start in reversed(starts):
        end = pairs.get(start - 1)
        if end is not None:
            return text[start:end]
    return None


def predicted_answer(response: str | None) -> str | None:
    """The answer outside the think block; else the last ``\\boxed{}``; else the last answer tag."""
    if not response:
        return None
    ans = final_answer(response)
    if ans:
        return ans
    boxed = last_boxed(response)
    if boxed:
        return boxed
    tags = ANSWER_TAG.findall(response)
    return tags[-1].strip() if tags else None


def _unwrap(s: str) -> str:
    s = s.strip()
    for _ in range(3):
        before = s
        s = s.strip().strip("$").strip()
        for pre, post in (("\\(", "\\)"), ("\\[", "\\]")):
            if s.startswith(pre) and s.endswith(post):
                s = s[len(pre):-len(post)].strip()
        if s.startswith("\\boxed{") and s.endswith("}"):
            s = s[len("\\boxed{"):-1]
        s = re.sub(r"^(?:the\s+)?(?:final\s+)?answer\s*(?:is)?\s*[:：]?\s*", "", s, flags=re.I)
        s = s.rstrip(".。")
        if s == before:
            break
    return s


_LHS = re.compile(r"^\s*[A-Za-z\\][\w\\{}^ ,()θωμ₀-₉]{0,24}?\s*=(?!=)")


def rhs(s: str) -> str:
    """``P_1 = P_2 = expr`` → ``expr``: the name on the left is not part of the value."""
    t = _unwrap(s)
    while True:
        m = _LHS.match(t)
        if not m or "=" in t[m.end():m.end() + 1]:
            return t
        t = t[m.end():].strip()


def normalize(s: str) -> str:
    """A canonical spelling: wrappers off, LaTeX and unicode variants unified, spacing removed."""
    s = _unwrap(s)
    s = re.sub(r"\\(?:text|mathrm|mathbf|textbf|operatorname)\s*\{([^{}]*)\}", r"\1", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\left", "").replace("\\right", "")
    s = s.replace("−", "-").replace("–", "-").replace("×", "*").replace("\\times", "*").replace("\\cdot", "*")
    s = s.replace("π", "\\pi").replace("^\\circ", "°").replace("^{\\circ}", "°").replace("\\circ", "°")
    s = s.replace("\\,", "").replace("\\ ", "").replace("\\!", "")
    s = _strip_hats(s)
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
            found[letter] = text.strip()
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
    t = _unwrap(s).replace("−", "-").replace("\\%", "%").replace("^\\circ", "°").replace("^{\\circ}", "°").strip()
    percent = t.endswith("%")
    m = _UNIT_TAIL.match(t)
    if m and not _NUMBER.match(t):
        t = m.group(1)
    t = t.strip().rstrip("%").strip()
    frac = re.fullmatch(r"\\frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)\s*/\s*(-?[\d.]+)", t)
    try:
        if frac:
            a, b = (frac.group(1), frac.group(2)) if frac.group(1) else (frac.group(3), frac.group(4))
            return float(a) / float(b), percent
        if _NUMBER.match(t):
            return float(t.replace(",", "")), percent
    except (ValueError, ZeroDivisionError):
        return None
    return None


def _numbers_equal(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-6)


def _num_match(g: str, p: str) -> bool | None:
    gn, pn = _number(g), _number(p)
    if gn is None or pn is None:
        return None
    (gv, gp), (pv, pp) = gn, pn
    if _numbers_equal(gv, pv):
        return True
    # 50% and 0.5 state the same value
    return gp != pp and _numbers_equal(gv / 100 if gp else gv, pv / 100 if pp else pv)


_SPACED = re.compile(r"[ \t]{2,}|\s*\n\s*")
# a symbolic "different" is trusted only for plain expressions: statements (relations, congruence,
# similarity) and long identities parse in more ways than math-verify compares, so there it is undecided
_RELATION = re.compile(r"[=<>≤≥∼≅∥⊥≈]|\\(sim|cong|parallel|perp|leq?|geq?|neq|approx|equiv)\b")


def _split_items(s: str) -> list[str] | None:
    t = _unwrap(s)
    if len(t) >= 2 and t[0] + t[-1] in ("()", "[]", "{}"):
        t = t[1:-1]
    seps = ",，"
    if "," not in t and "，" not in t:
        if ";" in t:
            seps = ";"
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


def _plain_to_latex(s: str) -> str:
    """``sqrt(x)`` → ``\\sqrt{x}`` (plain-text answers next to LaTeX ones)."""
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
        from math_verify import parse, verify
    except ImportError:  # pragma: no cover - an optional dependency at run time
        return None
    main = threading.current_thread() is threading.main_thread()
    # math-verify's timeouts use signal.alarm, which only works on the main thread
    kw = {} if main else {"parsing_timeout": None}
    g, p = _plain_to_latex(_strip_hats(rhs(g))), _plain_to_latex(_strip_hats(rhs(p)))
    try:
        gold = parse(f"${g}$", **kw)
        pred = parse(f"${p}$", **kw)
        if not gold or not pred:
            return None
        return bool(verify(gold, pred, **({} if main else {"timeout_seconds": None})))
    except Exception:
        return None


def _atom(g: str, p: str, options: dict[str, str]) -> tuple[bool | None, str]:
    if normalize(g) == normalize(p) or normalize(rhs(g)) == normalize(rhs(p)):
        return True, "exact"
    gl = _as_letter(g, options) if _LETTER.match(_unwrap(g)) else None
    if gl:
        pl = _as_letter(p, options)
        if pl:
            return pl == gl, "choice"
        if gl in options:  # gold is a letter, the trace answered with the option's content
            opt = options[gl]
            if normalize(opt) == normalize(p):
                return True, "choice_text"
            num = _num_match(opt, p)
            if num is not None:
                return num, "choice_numeric"
            if any(normalize(text) == normalize(p) for letter, text in options.items() if letter != gl):
                return False, "choice_text"  # the trace named another option's content
            return None, "choice_text"  # the option's content written another way: not for rules to say
        return None, "choice"  # a letter against text, with no options to map it: undecided
    num = _num_match(g, p)
    if num is not None:
        return num, "numeric"
    if re.fullmatch(r"[A-Za-z][A-Za-z\s\-']+", _unwrap(g)) and re.fullmatch(r"[A-Za-z][A-Za-z\s\-']+", _unwrap(p)):
        return False, "words"  # both plain words and not equal: different answers
    sym = _symbolic(g, p)
    if sym is False and (_RELATION.search(g + p) or max(len(_unwrap(g)), len(_unwrap(p))) > 40):
        sym = None
    if sym is not None:
        return sym, "symbolic"
    return None, "undecided"


def _one_vs_many(gold: str, parts: list[str], options: dict[str, str]) -> tuple[bool | None, str]:
    """Several answers against one gold: matching one part is not decidable by rules."""
    matches = [_atom(gold, part, options)[0] for part in parts]
    return (None if any(m is not False for m in matches) else False), "parts"


def _many_vs_many(g_items: list[str], p_items: list[str]) -> tuple[bool | None, str]:
    """Tuples, lists and multi-part answers, compared item by item (letters as a set)."""
    if len(g_items) != len(p_items):
        g_items = _expand_chains(g_items)
    if len(g_items) != len(p_items):
        return None, "parts"
    if all(_LETTER.match(_unwrap(x)) for x in g_items + p_items):
        return sorted(x.upper() for x in g_items) == sorted(x.upper() for x in p_items), "set"
    verdicts = [_atom(a, b, {})[0] for a, b in zip(g_items, p_items)]
    if all(v is True for v in verdicts):
        return True, "tuple"
    return (False if any(v is False for v in verdicts) else None), "tuple"


def verify(question: str | None, gold: str | None, response: str | None) -> Verdict:
    if gold is None or not str(gold).strip():
        # the seed's rule: nothing to compare with counts as consistent (the row is not lost, no judge is asked)
        return Verdict(True, "no_gold", "no ground-truth answer: consistent by the seed's rule")
    pred = predicted_answer(response)
    if pred is None:
        return Verdict(False, "no_answer", "the trace gives no final answer")
    options = parse_options(question)
    g_items, p_items = _split_items(gold), _split_items(pred)
    ok: bool | None
    if normalize(gold) == normalize(pred) or normalize(rhs(gold)) == normalize(rhs(pred)):
        ok, method = True, "exact"
    elif p_items and len(p_items) > 1 and not g_items:
        ok, method = _one_vs_many(gold, p_items, options)
    elif g_items and p_items:
        ok, method = _many_vs_many(g_items, p_items)
    else:
        ok, method = _atom(gold, pred, options)
    analysis = f"gold {gold!r} vs predicted {pred!r}: " + {True: "equivalent", False: "different", None: "undecided"}[ok]
    return Verdict(ok, method, analysis)


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
