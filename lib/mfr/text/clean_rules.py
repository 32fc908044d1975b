"""Exact, cheap question-cleaning rules. Each rule returns the new text; ``clean_text`` records an
action code for every rule that changed something.

Rules never touch ``<image>`` tags, LaTeX, blanks (``____``) or option layouts: they only remove
what is certainly noise (links, ads, numbering, score notes, broken characters, markup residue).
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

IMAGE_TAG = "<image>"
_TAG_GUARD = "\uE000"  # private-use char stands in for <image> while the rules run

# --- links, e-mails, ads, watermarks -------------------------------------------------------------
_URL = re.compile(r"(?i)\b(?:https?://|ftp://|www\.)[^\s<>\"'，。）)\]]*[^\s<>\"'，。）)\].,;:!?]")
# Bounded parts (RFC lengths) keep every pattern linear on hostile input such as "a." * 10**5.
_EMAIL = re.compile(r"\b[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b")
# Lines that carry no content: source/copyright notes, ads, watermark sites (zh and en).
_NOISE_LINE = re.compile(
    r"(?i)(?:"
    r"(?:本题|试题|题目)?来源[:：].*|版权所有.*|©.*|copyright\b.*|all rights reserved.*"
    r"|.*(?:关注|扫码|微信公众号|公众号|qq群|加群|更多(?:资料|试题|资源)).*"
    r"|.*(?:学科网|组卷网|菁优网|zxxk|jyeoo|21世纪教育网).*"
    r"|(?:downloaded|retrieved) from\b.*|(?:posted|submitted|uploaded) by\b.*"
    r"|for more (?:questions|resources|practice)\b.*|subscribe\b.*"
    r")"
)
_NOISE_LINE_MAX = 200  # a source note or ad is one short line; longer lines are content

# --- numbering, ids, score notes before the question ----------------------------------------------
_LEADING_INDEX = re.compile(
    r"^(?:"
    r"(?:Q(?:uestion)?|Problem|Exercise|Ex\.?|Example|No\.?|#)\s*\d{1,4}[a-z]?\s*[.:：．、)）-]?\s+"
    r"|\d{1,3}\s*[.．、](?!\d)\s*"
    r"|[(（]\s*\d{1,2}\s*[)）](?=\s*\S)\s*"
    r"|第\s*[0-9一二三四五六七八九十百]+\s*[题問问]\s*[.:：、．]?\s*"
    r"|例\s*[0-9一二三四五六七八九十]+\s*[.:：、．]?\s*"
    r"|(?:ID|id)\s*[:：#]\s*\w+\s*[.:：,，]?\s*"
    r")"
)
_SCORE_NOTE = re.compile(
    r"[(（\[【]\s*(?:本小?题)?(?:满分|共|计)?\s*\d{1,3}(?:\.\d)?\s*"
    r"(?:分|points?|pts?\.?|marks?)\s*[)）\]】]"
    r"|[(（\[【]\s*(?:本小?题)?满分\s*\d{1,3}\s*分\s*[)）\]】]",
    re.IGNORECASE,
)

# --- broken characters ------------------------------------------------------------------------------
_MOJIBAKE_HINT = re.compile("[ÃÂâ][\u0080-\u00bf\u2018-\u203a\u0152-\u0192\u02c6-\u02dc€™]")
_CONTROL = re.compile("[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u200b-\u200f\u2060\ufeff]")
_REPLACEMENT = re.compile("\ufffd+")

# --- formatting residue -------------------------------------------------------------------------------
_REPEATED_PUNCT = re.compile(r"([!?！？,，;；])\1+")
_HTML_BREAK = re.compile(r"(?i)<\s*br\s*/?\s*>|<\s*/\s*p\s*>")
_HTML_TAG = re.compile(
    r"(?i)</?\s*(?:p|div|span|font|b|i|u|em|strong|br|hr|sup|sub|table|tr|td|th|tbody|thead|center|small|big|a)"
    r"(?:\s+[^<>]*)?/?>"
)
_HTML_ENTITY = re.compile(r"&(?:nbsp|amp|lt|gt|quot|apos|#\d{1,6}|#x[0-9a-fA-F]{1,6});")
_MD_IMAGE = re.compile(r"!\[[^\]\n]{0,300}\]\([^)\s]{0,1000}\)")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@dataclass
class CleanedText:
    text: str
    actions: list[str] = field(default_factory=list)


# "See <url> for more practice." is an ad as a whole: the sentence goes, not just the link.
_URL_BODY = r"(?:https?://|ftp://|www\.)[^\s<>]*[^\s<>.,;:!?)）]"
_URL_SENTENCE = re.compile(
    r"(?i)(?:(?<=^)|(?<=[.!?。\n]))[ \t]{0,8}(?:please\s+|for more \w+,?\s+)?(?:see|visit|go to|check(?: out)?|more (?:at|on)|source|via)"
    r"\s*:?\s*" + _URL_BODY + r"[^.!?。\n]{0,80}[.!?。]?"
)
_URL_PAREN = re.compile(r"(?i)[ \t]{0,4}[(（\[]\s*(?:(?:source|see|from|via)\s*:?\s*)?" + _URL_BODY + r"\s*[)）\]]")
_SIGNATURE = re.compile(r"(?im)^[ \t]*(?:--\s*)?(?:best regards|kind regards|regards|sincerely|cheers|thanks)[,!.]?.*$")


def remove_urls(text: str) -> str:
    out = _URL.sub("", _URL_PAREN.sub("", _URL_SENTENCE.sub("", text)))
    return re.sub(r"[ \t]+([.,;:!?])", r"\1", out) if out != text else text


def remove_emails(text: str) -> str:
    """A short line with an e-mail is a signature or contact line: the line goes; else the address."""
    lines = []
    for line in text.split("\n"):
        if _EMAIL.search(line) and len(line.split()) <= 15:
            continue
        lines.append(_EMAIL.sub("", line))
    return _SIGNATURE.sub("", "\n".join(lines))


def remove_noise_lines(text: str) -> str:
    """Drop whole short lines that are source notes, ads or watermarks (checked line by line: linear)."""
    lines = text.split("\n")
    kept = [ln for ln in lines if len(ln) > _NOISE_LINE_MAX or not _NOISE_LINE.fullmatch(ln.strip(" \t"))]
    return "\n".join(kept) if len(kept) != len(lines) else text


def remove_leading_index(text: str) -> str:
    """Question numbers and ids before the question ("Q12.", "1.", "第3题", "ID: 17 ")."""
    stripped = text.lstrip()
    for _ in range(3):  # "19. (1)" style stacks
        new = _LEADING_INDEX.sub("", stripped, count=1)
        if new == stripped or not new.strip():
            break
        stripped = new
    return stripped if stripped != text.lstrip() else text


def remove_score_notes(text: str) -> str:
    return _SCORE_NOTE.sub("", text)


def repair_mojibake(text: str) -> str:
    """UTF-8 read as cp1252/latin-1 ("Ã©" → "é", "â€™" → "’"), repaired only where it round-trips."""
    if not _MOJIBAKE_HINT.search(text):
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            fixed = text.encode(codec).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        if len(_MOJIBAKE_HINT.findall(fixed)) < len(_MOJIBAKE_HINT.findall(text)):
            return fixed
    # mixed text: repair each suspicious run on its own
    def fix(m: re.Match[str]) -> str:
        for codec in ("cp1252", "latin-1"):
            try:
                return m.group(0).encode(codec).decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
        return m.group(0)

    return re.sub("[\u00c2-\u00f4][\u0080-\u00bf\u2018-\u203a\u0152-\u0192\u02c6-\u02dc€™]{1,3}", fix, text)


def remove_control_chars(text: str) -> str:
    return _CONTROL.sub("", text)


def remove_replacement_chars(text: str) -> str:
    return _REPLACEMENT.sub("", text)


def collapse_repeated_punctuation(text: str) -> str:
    return _REPEATED_PUNCT.sub(r"\1", text)


def remove_markup(text: str) -> str:
    """Stray HTML tags and entities, markdown image links; never ``<image>`` (guarded before)."""
    text = _HTML_BREAK.sub("\n", text)
    text = _HTML_TAG.sub("", text)
    text = _HTML_ENTITY.sub(lambda m: html.unescape(m.group(0)).replace("\u00a0", " "), text)
    return _MD_IMAGE.sub("", text)


def normalize_whitespace(text: str) -> str:
    lines = [_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


# Order matters: characters first (so later patterns see real text), numbering last before whitespace.
RULES: list[tuple[str, Callable[[str], str]]] = [
    ("mojibake_repaired", repair_mojibake),
    ("control_chars_removed", remove_control_chars),
    ("replacement_chars_removed", remove_replacement_chars),
    ("markup_removed", remove_markup),
    ("url_removed", remove_urls),
    ("email_removed", remove_emails),
    ("noise_line_removed", remove_noise_lines),
    ("score_note_removed", remove_score_notes),
    ("punctuation_collapsed", collapse_repeated_punctuation),
    ("index_removed", remove_leading_index),
]


def clean_text(text: str | None) -> CleanedText:
    """Apply every rule; ``actions`` names those that changed the text. A leading ``<image>`` stays first."""
    if text is None:
        return CleanedText("", ["text_missing"])
    original = text
    leading = text.lstrip().startswith(IMAGE_TAG)
    body = text.lstrip()[len(IMAGE_TAG):] if leading else text
    body = body.replace(IMAGE_TAG, _TAG_GUARD)
    actions: list[str] = []
    for code, rule in RULES:
        new = rule(body)
        if new != body:
            actions.append(code)
            body = new
    sep = " " if leading and body[:1] in (" ", "\t") else ""  # keep "<image> Text" as it came
    body = normalize_whitespace(body).replace(_TAG_GUARD, IMAGE_TAG)
    out = (IMAGE_TAG + (sep if body else "") + body) if leading else body
    if "whitespace_normalized" not in actions and out != original and _squash(out) == _squash(original):
        actions.append("whitespace_normalized")
    return CleanedText(unicodedata.normalize("NFC", out), actions)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def normalized_question(text: str | None) -> str:
    """The dedup key of a question: no image tags, case and whitespace folded."""
    if not text:
        return ""
    return re.sub(r"\s+", " ", text.replace(IMAGE_TAG, " ")).strip().casefold()
