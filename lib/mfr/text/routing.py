"""Which questions need the cleaning model, and the instruction rewrites rules can do alone.

Routes (a question may have several):

* ``translation``: not English (``mfr.text.language``); never skipped, an untranslated question must
  not reach distillation;
* ``instruction``: a shallow-answer instruction the rules could not rewrite with certainty;
* ``task_check``: looks like coding or drawing, the seed's non-answer class (descriptions, essays and
  opinions are not in it: the dump kept them); the model confirms before a row is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mfr.text.language import detect_language

# Sentences that only ask to skip the reasoning; removing them changes nothing else. (en, zh)
_CERTAIN_SHALLOW = [
    r"(?:please\s+)?answer the question using a single word or phrase\.?",
    r"(?:please\s+)?answer with a single word or phrase\.?",
    r"(?:please\s+)?(?:just|only|simply)\s+(?:give|provide|state|write|output)\s+(?:me\s+)?(?:the\s+)?(?:final\s+)?answer"
    r"(?:\s+directly)?(?:,?\s+(?:without|with no)\s+(?:any\s+)?(?:explanation|reasoning|steps)s?)?\.?",
    r"(?:please\s+)?(?:give|provide|state|output)\s+(?:the\s+)?(?:final\s+)?answer directly\.?",
    r"(?:please\s+)?answer directly\.?",
    r"(?:no|without)\s+(?:any\s+)?(?:explanation|reasoning)\s+(?:is\s+)?(?:needed|required|necessary)\.?",
    r"do not (?:explain|show (?:your|the) (?:work|steps|reasoning))\.?",
    r"(?:请)?直接(?:写出|给出|输出|回答)(?:最终)?答案[。.]?",
    r"(?:只需|只要)(?:写出|给出)答案(?:即可)?[。.]?",
    r"(?:不需要|无需|不用)(?:解释|说明|过程)[。.]?",
]
_CERTAIN_RE = re.compile(r"(?i)(?:^|(?<=[\s.。:：？?！!，,]))(?:" + "|".join(_CERTAIN_SHALLOW) + r")\s*(?=$|\n|\s)")
# "... from the given choices directly." keeps the format request, drops "directly".
_DIRECTLY_SUFFIX = re.compile(
    r"(?i)(answer with the option'?s? letter from the given choices)\s+directly\s*\."
)
# Hints that remain after the rewrite mean the rules were not sure: the model decides.
_SHALLOW_HINT = re.compile(
    r"(?i)\b(?:answer|respond|reply|give|state|write|output)\w*\s+(?:\w+\s+){0,3}?directly\b"
    r"|\bdirectly\s+(?:give|write|answer|state|output|select|choose|pick|provide|respond|reply)\b"
    r"|without (?:any )?(?:explanation|reasoning|working|justification|steps)"
    r"|\bonly (?:the )?(?:final )?(?:answer|option letter|letter)\b|\b(?:a )?single (?:word|integer|number|letter)\b"
    r"|\bone word\b"
    r"|直接|只需|无需解释|不需要解释"
)
_TASK_HINT = re.compile(
    r"(?i)"
    r"\b(?:write|implement|complete|debug|fix)\s+(?:a|an|the|this)?\s*(?:python|java(?:script)?|c\+\+|c#|sql|html|css)?\s*"
    r"(?:program|function|code|script|class|query|snippet)\b"
    r"|```|\bdef\s+\w+\(|#include\s*<"
    r"|\b(?:draw|sketch|paint|design)\s+(?:a|an|your|the)\s+(?:picture|drawing|poster|logo|image|cartoon)\b"
    r"|(?:^|<image>|[.!?:]\s)\s*(?:please\s+)?(?:draw|sketch)\b(?!\s+(?:a\s+)?conclusions?)"
    r"|画出|作图|编写程序"
)


@dataclass
class Routing:
    text: str
    language: str
    routes: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)


# What a shallow instruction becomes: the seed's cleaning model rewrites it into a request for reasoning
# before the final answer; where the rules are certain they do the same, in the instruction's language.
REASONING_REQUEST = {
    "en": "Reason through the problem step by step, then give the final answer.",
    "zh": "请先逐步推理，再给出最终答案。",
}
_CJK = re.compile(r"[\u4e00-\u9fff]")


def rewrite_shallow_instructions(text: str) -> tuple[str, bool]:
    """Instruction sentences that only forbid reasoning become one request for reasoning (placed where
    the first one stood: on its own line if it had one); (new text, changed)."""
    new, suffixes = _DIRECTLY_SUFFIX.subn(r"\1.", text)
    found = list(_CERTAIN_RE.finditer(new))
    if not found and not suffixes:
        return text, False
    rest = _CERTAIN_RE.sub("", new)
    if not rest.replace("<image>", "").strip():  # the instruction was all there was
        return text, False
    zh = bool(found) and bool(_CJK.search(found[0].group(0)))
    request = REASONING_REQUEST["zh" if zh else "en"]
    if found:
        at = found[0].start()
        before = new[:at]
        after = _CERTAIN_RE.sub("", new[found[0].end():])
        sep = "" if zh or not before or before[-1].isspace() else " "
        new = before + sep + request + ("\n" + after.lstrip() if after.strip() else "")
    else:  # only "directly" was dropped from a format request: the request for reasoning follows it
        new = new.rstrip() + ("" if zh else " ") + request
    new = "\n".join(line.rstrip(" \t") for line in new.split("\n"))
    new = re.sub(r"\n{3,}", "\n\n", new).strip()
    return new, True


def route(text: str) -> Routing:
    """Rule rewrites first, then the routes the model must decide."""
    language = detect_language(text)
    rewritten, changed = rewrite_shallow_instructions(text)
    r = Routing(rewritten, language, actions=["instruction_rewritten"] if changed else [])
    if language != "en":
        r.routes.append("translation")
    if _SHALLOW_HINT.search(rewritten):
        r.routes.append("instruction")
    if _TASK_HINT.search(rewritten):
        r.routes.append("task_check")
    return r


def clean_question(text: str | None) -> Routing:
    """Rules (``mfr.text.clean_rules``), then instruction rewrites and routes on the cleaned text."""
    from mfr.text.clean_rules import clean_text

    cleaned = clean_text(text)
    r = route(cleaned.text)
    r.actions = cleaned.actions + r.actions
    return r
