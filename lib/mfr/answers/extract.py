"""Short answers from worked solutions, by rule, where the rule cannot be wrong."""

from __future__ import annotations

import re

from mfr.answers.boxed import last_boxed

_MAX_LEN = 120
# where an answer is announced; the answer is what follows the last announcement, up to its sentence's end
_FINAL_SECTION = re.compile(r"(?i)(?:#+\s*|\*\*\s*)?final\s+answer\s*(?:#+|\*\*)?\s*[:：]?\s*(?:\*\*)?\s*")
_ANSWER_IS = re.compile(r"(?i)\b(?:the\s+)?(?:final\s+)?answer\s+is\s*[:：]?\s*")
_SENTENCE = re.compile(r"(?s)(.+?)\s*(?:\.(?=\s|$)|。|\n|$)")
_DISPLAY = re.compile(r"(?s)\s*(?:\$\$|\\\[)\s*(.+?)\s*(?:\$\$|\\\])")
# an announcement that is not one: "the answer is not obvious", "the answer is B because …"
_HEDGED = re.compile(r"(?i)^(?:not|unclear|wrong|incorrect|unknown)\b|\b(?:because|since|which|although)\b")
_ANSWER_COLON = re.compile(r"(?is)^\s*answer\s*[:：]\s*(.+?)\s*$")
_LONE_LETTER = re.compile(r"^\s*[(（]?([A-H])[)）]?\s*[.。]?\s*$")
_ZH_ANSWER = re.compile(r"(?s)(?:故|所以)?(?:答案|正确答案|故选|应选|选)\s*(?:为|是)?\s*[:：]?\s*([A-H](?:\s*[、,，]\s*[A-H])*)\s*[.。．]?\s*$")
# "The correct option is B.", "Option C is correct."
_CHOICE_IS = re.compile(r"(?i)\b(?:correct|right)\s+(?:option|choice)\s+is\s*[:：]?\s*[(（]?([A-H])[)）]?\s*[.。．]?\s*$")
_CHOICE_CORRECT = re.compile(
    r"(?i)\b(?:option|choice)\s*[(（]?([A-H])[)）]?\s+is\s+(?:the\s+)?(?:correct|right)(?:\s+(?:one|answer|option|choice))?\s*[.。．]?\s*$")
# the solution's last line alone: "Answer: 12", "**Answer:** 5", "Ans: 20", "#### 42", "故答案为：$\frac{1}{2}$"
_LAST_LINE = [
    re.compile(r"(?i)^\s*(?:\*\*)?\s*(?:final\s+)?(?:answer|ans)\.?\s*(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)\s*$"),
    re.compile(r"^\s*####\s*(.+?)\s*$"),
    re.compile(r"(?:故|所以|因此)?(?:答案|正确答案)\s*(?:为|是)\s*[:：]?\s*(.+?)\s*[.。．]?\s*$"),
]


def _tidy(ans: str) -> str | None:
    ans = ans.strip().strip("*").strip()
    ans = re.sub(r"^\$+|\$+$", "", ans).strip()
    if ans.startswith("\\(") and ans.endswith("\\)"):
        ans = ans[2:-2].strip()
    ans = ans.rstrip("。.").strip()
    if not ans or len(ans) > _MAX_LEN or "\n" in ans:
        return None
    return ans


def extract_answer(solution: str | None) -> str | None:
    """The short answer of a worked solution, or None when no rule is certain.

    Order: a lone option letter; the last ``\\boxed{}``; a "Final answer" section; "The answer is X"; a
    closing Chinese "答案为 C"/"故选 B"; "The correct option is B" / "Option B is correct"; a last line
    "Answer: X", "#### X" or "故答案为 X"; a whole solution "Answer: X".
    """
    if not solution or not solution.strip():
        return None
    m = _LONE_LETTER.match(solution)
    if m:
        return m.group(1)
    boxed = last_boxed(solution)
    if boxed is not None:
        return _tidy(boxed)
    tail = solution.strip()[-600:]
    announced = [m for pattern in (_FINAL_SECTION, _ANSWER_IS) for m in pattern.finditer(tail)]
    if announced:
        rest = tail[max(announced, key=lambda m: m.end()).end():]
        display = _DISPLAY.match(rest)  # an answer set apart: $$ … $$ or \[ … \] on lines of their own
        sentence = display or _SENTENCE.match(rest)
        ans = _tidy(sentence.group(1)) if sentence else None
        return None if ans is None or _HEDGED.search(ans) else ans
    matches = list(_ZH_ANSWER.finditer(tail))
    if matches:
        return _tidy(matches[-1].group(1))
    for pattern in (_CHOICE_IS, _CHOICE_CORRECT):
        m = pattern.search(tail)
        if m:
            return m.group(1).upper()
    last_line = tail.rsplit("\n", 1)[-1]
    for pattern in _LAST_LINE:  # the first two are anchored at the line's start, the Chinese one is not
        m = pattern.search(last_line)
        if m:
            return _tidy(m.group(1))
    m = _ANSWER_COLON.match(solution)
    return _tidy(m.group(1)) if m else None


_REPLY = re.compile(r"(?im)^\s*\**\s*ANSWER\s*\**\s*[:：]\s*(.+?)\s*$")
_REPLY_TAG = re.compile(r"(?is)<answer>(.*?)</answer>")


def parse_extraction_reply(reply: str | None) -> str | None:
    """The answer in the extraction model's reply (think blocks ignored): the last ``<answer>…</answer>``
    (the seed's protocol; empty means none), else an ``ANSWER: …`` line; None when there is none."""
    if not reply:
        return None
    text = re.sub(r"(?s)<think>.*?</think>", "", reply)
    text = text.rsplit("</think>", 1)[-1]
    found = _REPLY_TAG.findall(text) or _REPLY.findall(text)
    if not found:
        return None
    ans = _tidy(found[-1])
    return None if ans is None or ans.upper() in ("NONE", "N/A") else ans
