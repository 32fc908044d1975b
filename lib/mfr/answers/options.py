"""Multiple-choice answers: the options a question lists, a letter read from an answer, a gold that names
its option, and an option's content against a letter. Comparisons of contents are passed in (``same``).
"""

from __future__ import annotations

import re

from mfr.answers.normalize import normalize, unwrap
from mfr.answers.numbers import num_match
from mfr.answers.verdict import Compare, Decision

LETTER = re.compile(r"^\(?([A-Za-z])\)?[.:：)]?$")


_OPTION_LETTER = re.compile(r"^(?:option|choice|answer)?\s*[:：]?\s*\(?([A-Ha-h])\)?(?:[.:：)]\s*(.*))?$", re.I)


# "A. x", "(B) x", "[C] x", "D: x", "E．x" (full-width), after a space, a line start or a colon ("选项：A. x");
# the next option starts after a space: "B:15" as it is, a lower-case "b." only with a space after it
_OPTION_MARK = r"[(\[]?(?:[A-H][.)\]：:．]|[a-h][.)\]：:．](?=\s))"


_OPTIONS = re.compile(r"(?:^|(?<=[\s:：]))[(\[]?([A-Ha-h])[.)\]：:．]\s*(.+?)(?=\s+" + _OPTION_MARK + r"|\n|$)")


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


def as_letter(ans: str, options: dict[str, str]) -> str | None:
    raw = unwrap(ans).strip()
    m = _OPTION_LETTER.match(raw)
    if m and (not options or m.group(1).upper() in options):
        return m.group(1).upper()
    if options:
        key = normalize(raw)
        hits = [k for k, v in options.items() if normalize(v) == key]
        if len(hits) == 1:
            return hits[0]
    return None


# a gold answer that names its option: "Option B", "(C) 30°", "D. 12 cm"
GOLD_OPTION = re.compile(r"^(?:(?i:option|choice)\s*\(?([A-Ha-h])\)?|\(?([A-H])[.)：:．]\s*(.+))$")


def named_option(letter: str, text: str | None, p: str, options: dict[str, str], compare: Compare) -> Decision:
    """A gold that names its option (a letter, maybe the option's text after it) against a prediction."""
    pl = as_letter(p, options) or (m.group(1).upper() if (m := LETTER.match(unwrap(p))) else None)
    if pl:
        return pl == letter, "choice"
    content = options.get(letter) or text
    if not content:
        return None, "choice"
    return compare(content, p, {})[0], "choice_text"


def spellings(option: str) -> set[str]:
    """An option's content, normalised, with and without a gloss in brackets after it (``pathos (emotion)``)."""
    head = re.sub(r"\s*\([^()]*\)\s*$", "", option)
    return {normalize(option), normalize(head)} if head.strip() else {normalize(option)}


def letter_for_content(g: str, p: str, options: dict[str, str], compare: Compare) -> Decision:
    """A gold written as an option's content (``15 cm``) against a predicted letter: the letter's content
    decides; without options to map the letter, undecided."""
    pl = as_letter(p, options)
    if not pl or pl not in options:
        return None, "choice"
    if normalize(options[pl]) == normalize(g):
        return True, "choice"
    num = num_match(g, options[pl])
    if num is not None:
        return num[0], "choice_numeric"
    gl = as_letter(g, options)
    if gl is not None:
        return gl == pl, "choice"
    return option_states(pl, g, options, compare), "choice_text"


def option_states(letter: str, content: str, options: dict[str, str], compare: Compare) -> bool | None:
    """Does option ``letter`` state ``content`` written another way (``\\dfrac{\\sqrt3}{2}``, ``0.866`` for
    ``$\\frac{\\sqrt{3}}{2}$``)? Compared as answers are; False only when ``content`` is another option's."""
    same = compare(options[letter], content, {})[0]
    if same is True:
        return True
    if same is False and any(compare(text, content, {})[0] is True for other, text in options.items() if other != letter):
        return False
    return None


def letter_set(s: str, options: dict[str, str]) -> set[str] | None:
    """``AC``, ``A, C``, ``A and C`` → {A, C} when every letter is one of the question's options."""
    t = re.sub(r"[\s,;()]|\band\b", "", unwrap(s))
    if not options or not re.fullmatch(r"[A-H]{2,}", t):
        return None
    letters = set(t)
    return letters if len(letters) == len(t) and letters <= set(options) else None
