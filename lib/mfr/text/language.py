"""Offline language routing: is a question English, or does it need translation?

No dependency on purpose. The decision that matters is binary (translate or not) and must never
miss a non-English question, while math-heavy English ("Find x.") must not be sent to a model:

* any letter of a non-Latin script (Han, kana, Hangul, Cyrillic, Arabic, …) outside math makes the
  text non-English, however few (mixed text still needs translating);
* Greek letters count only as whole words (θ, π, Δx are math, not Greek);
* Latin-script text is English unless other languages' function words outnumber English ones.

Statistical detectors (fastText, lingua, langdetect) answer a harder question than this one, cost
model files or milliseconds per row, and are unreliable on short formula-heavy questions.
"""

from __future__ import annotations

import re
import unicodedata

# Bounded spans keep these linear on hostile input (many unclosed "\(" or "$$").
_MATH = re.compile(r"\$\$.{0,600}?\$\$|\$[^$]{0,400}\$|\\\(.{0,400}?\\\)|\\\[.{0,600}?\\\]|\\[A-Za-z]+", re.DOTALL)
_URLISH = re.compile(r"(?:https?|ftp)://\S+|www\.\S+|<image>")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)

# Script ranges → language code (first matching script wins when scripts mix).
_SCRIPTS: list[tuple[str, re.Pattern[str]]] = [
    ("ja", re.compile("[\u3040-\u30ff\u31f0-\u31ff]")),
    ("ko", re.compile("[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")),
    ("zh", re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002a6df]")),
    ("ru", re.compile("[\u0400-\u04ff]")),
    ("ar", re.compile("[\u0600-\u06ff\u0750-\u077f]")),
    ("he", re.compile("[\u0590-\u05ff]")),
    ("hi", re.compile("[\u0900-\u097f]")),
    ("th", re.compile("[\u0e00-\u0e7f]")),
]
_GREEK_WORD = re.compile(r"(?<![\w\\])[\u0370-\u03ff\u1f00-\u1fff]{3,}(?!\w)")

_ENGLISH = frozenset(
    ["the", "of", "and", "is", "are", "was", "were", "what", "which", "who", "whom", "whose", "where", "when", "why", "how", "this", "that", "these", "those", "with", "from", "into", "for", "by", "be", "been", "has", "have", "had", "not", "does", "do", "did", "find", "if", "then", "than", "there", "their", "its", "it", "as", "at", "an", "or", "on", "in", "to", "shown", "figure", "image", "given", "following", "value", "many", "much", "each", "other", "such", "can", "will", "would", "should", "must", "may", "let", "show", "calculate", "determine", "answer", "question", "choose", "select", "correct"]
)
_FOREIGN: dict[str, frozenset[str]] = {
    "fr": frozenset(["le", "la", "les", "des", "est", "une", "du", "que", "dans", "pour", "sur", "avec", "quelle", "quel", "sont", "cette", "nous", "vous", "où", "aux"]),
    "de": frozenset(["der", "das", "und", "ist", "nicht", "ein", "eine", "mit", "den", "dem", "welche", "welcher", "wie", "sind", "auf", "für", "zu", "im", "von"]),
    "es": frozenset(["el", "los", "las", "del", "es", "una", "que", "por", "para", "con", "cuál", "cuántos", "cuánto", "está", "son", "como", "según"]),
    "pt": frozenset(["os", "não", "uma", "do", "da", "em", "que", "qual", "são", "está", "pelo", "pela", "como", "figura"]),
    "it": frozenset(["il", "gli", "della", "che", "è", "di", "una", "per", "sono", "nella", "quale", "questo", "come"]),
    "vi": frozenset(["là", "của", "và", "có", "các", "những", "trong", "một", "được", "cho", "này", "với", "không"]),
    "id": frozenset(["yang", "dan", "adalah", "dari", "ini", "itu", "untuk", "dengan", "pada", "tidak"]),
    "nl": frozenset(["het", "een", "van", "en", "is", "niet", "de", "zijn", "welke", "hoeveel"]),
}
# Words shared with English or too short to tell anything.
_AMBIGUOUS = frozenset(["a", "i", "in", "is", "on", "to", "an", "as", "of", "it", "be", "do", "die", "see", "can", "is"])


def detect_language(text: str | None) -> str:
    """ISO 639-1 code of the text's language ("en" for English and for text with no words)."""
    if not text:
        return "en"
    prose = _URLISH.sub(" ", _MATH.sub(" ", text))
    for code, script in _SCRIPTS:
        if script.search(prose):
            return code
    if len(_GREEK_WORD.findall(prose)) >= 2:
        return "el"
    words = [w.casefold() for w in _WORD.findall(prose)]
    if not words:
        return "en"
    english = sum(w in _ENGLISH for w in words)
    best, best_hits = "en", 0
    for code, vocab in _FOREIGN.items():
        hits = sum(w in vocab and w not in _AMBIGUOUS for w in words)
        if hits > best_hits:
            best, best_hits = code, hits
    if best_hits >= 2 and best_hits > english:
        return best
    if best_hits >= 1 and english == 0 and _has_foreign_letters(prose):
        return best
    return "en"


def _has_foreign_letters(text: str) -> bool:
    """Latin letters with marks English never uses (ñ, ß, ư, ơ, đ, ă, ...)."""
    for ch in text:
        if ch in "ßđĐøØłŁ":
            return True
        if ("\u00c0" <= ch <= "\u024f" or "\u1e00" <= ch <= "\u1eff") and unicodedata.decomposition(ch):
            return True
    return False


def needs_translation(text: str | None) -> bool:
    return detect_language(text) != "en"
