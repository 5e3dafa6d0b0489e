"""Person names from context cues, then every other mention of the names found.

No list of names: a name is found where a cue says one stands (a title, a labelled field, a
credential after it, "signed by", a relative, "X is a 54-year-old"), and the words of each name
are then looked for everywhere else in the note ("Mr. Gonzalez ... Gonzalez tolerated").

Eponyms are medicine, not people: a capitalized word followed by a head noun (disease, syndrome,
sign, ...), an eponym followed by 's, or a word inside a knowledge-base condition name is never
redacted by propagation or by a weak cue; only a strong cue (Dr./Mr./Ms., a "Name:" field, a
credential) makes "Parkinson" a person.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from .patterns import Hit
from .terms import Terms
from .types import PhiType

U, L = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿ"
WORD = rf"(?:(?:Mc|Mac|O['’]|D['’]|Al-|El-)?[{U}][{L}]+(?:[-'’][{U}][{L}]+)?)"
UPWORD = rf"(?:[{U}](?:[{U}'’-]*[{U}])?)"
INITIAL = rf"[{U}]\."
PARTICLE = r"(?:de\s+la|de\s+los|van\s+der|van\s+den|de|del|da|di|dos|du|van|von|le|la|bin|ibn)"
SEQ = rf"{WORD}(?:[ \t]+(?:{INITIAL}[ \t]+)?(?:{PARTICLE}[ \t]+)?{WORD}){{0,2}}"
SEQ2 = rf"{WORD}(?:[ \t]+(?:{INITIAL}[ \t]+)?(?:{PARTICLE}[ \t]+)?{WORD}){{1,2}}"
LAST_FIRST = rf"{WORD}(?:[ \t]+{WORD})?,[ \t]*{WORD}(?:[ \t]+(?:{INITIAL}|[{U}]\b))?"
UP_LAST_FIRST = rf"{UPWORD}(?:[ \t]+{UPWORD}){{0,2}},[ \t]*{UPWORD}(?:[ \t]+[{U}]\.?)?"
UP_SEQ = rf"{UPWORD}(?:[ \t]+{UPWORD}){{1,2}}"

STRONG, WEAK, PROPAGATED = 40, 38, 36

_TITLE = rf"\b(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Doctor)\.?[ \t]+(?P<name>(?:{PARTICLE}[ \t]+)?{SEQ})"
_FIELD = (r"\b(?i:patient(?:'s)?\s+name|patient|pt\.?\s+name|pt|name|full\s+name|guardian|next\s+of\s+kin|nok|re|cc|attn"
          r"|emergency\s+contact|contact\s+person|pcp|primary\s+care\s+(?:physician|provider)|attending(?:\s+physician)?"
          r"|referring\s+(?:physician|provider)|provider|surgeon|nurse|case\s+manager|social\s+worker|interpreter|spouse)"
          rf"[ \t]*[:\-][ \t]*(?:Dr\.?[ \t]+)?(?P<name>{LAST_FIRST}|{UP_LAST_FIRST}|{SEQ}|{UP_SEQ})")
_CREDENTIAL = (rf"(?P<name>{SEQ}),?[ \t]+(?:MD|M\.D\.|DO|RN|NP|PA-C|PA|PharmD|DDS|DPM|PhD|LCSW|MSW|CNM|CRNA|APRN|FNP"
               r"|LPN|MBBS)\b")
_ACTION = (r"\b(?i:electronically\s+signed\s+by|signed\s+by|dictated\s+by|transcribed\s+by|cosigned\s+by|reviewed\s+by"
           r"|seen\s+by|evaluated\s+by|examined\s+by|discussed\s+with|spoke\s+with|spoke\s+to|called|paged|per"
           r"|accompanied\s+by|cared\s+for\s+by|referred\s+by|care\s+of|c/o|contact|notify|ask\s+for|message"
           r"|(?:the\s+)?patient\s*,)"
           rf"[ \t]*:?[ \t]+(?:Dr\.?[ \t]+)?(?P<name>{SEQ})")
_RELATION = (r"\b(?i:wife|husband|spouse|partner|son|daughter|mother|father|mom|dad|sister|brother|grandson"
             r"|granddaughter|grandmother|grandfather|niece|nephew|aunt|uncle|friend|neighbou?r|caregiver|fianc[ée]e?"
             r"|boyfriend|girlfriend|guardian|roommate|cousin|stepdaughter|stepson)"
             rf"[ \t]*,?[ \t]+(?:named[ \t]+)?(?P<name>{SEQ})")
_SUBJECT = (rf"(?P<name>{SEQ})(?=[ \t]+is[ \t]+an?[ \t]+(?:[a-z]+[ \t]+){{0,2}}\d|[ \t]*,[ \t]+an?[ \t]+\d{{1,3}}[- ](?:year|yr)|[ \t]*\((?:DOB|age|MRN)\b)"
            rf"|(?P<name2>{SEQ2})(?=[ \t]+(?:presents|presented|reports|reported|states|stated|denies|denied|returns"
            r"|returned|arrived|complains|underwent|tolerated|agrees|agreed|declined|consented|has\s+been"
            r"|was\s+(?:seen|admitted|brought|transferred|discharged))\b)")

# an EHR banner line: "GONZALEZ, MARIA A  54F  Acct ..."
_BANNER = rf"(?m)^[ \t]*(?P<name>{UP_LAST_FIRST})(?=[ \t]*(?:$|[ \t]{{2}}|\||\d))"

CUES = [(re.compile(_TITLE), STRONG), (re.compile(_FIELD), STRONG), (re.compile(_CREDENTIAL), STRONG),
        (re.compile(_ACTION), WEAK), (re.compile(_RELATION), WEAK), (re.compile(_SUBJECT), WEAK),
        (re.compile(_BANNER), WEAK)]
TOKEN_RE = re.compile(rf"{WORD}|{UPWORD}|{INITIAL}")


def medical_context(text: str, start: int, end: int, terms: Terms) -> bool:
    """Is the word at ``text[start:end]`` part of a medical term (eponym, condition name)?"""
    while start > 0 and (text[start - 1].isalpha() or text[start - 1] in "-"):
        start -= 1  # the whole hyphenated compound: Wolff-Parkinson-White
    while end < len(text) and (text[end].isalpha() or text[end] == "-"):
        end += 1
    word = text[start:end]
    rest = text[end:end + 40]
    possessive = re.match(r"['’]s?\b", rest)
    after = re.match(r"(?:['’]s?)?\s+([A-Za-z]+)", rest)
    if after and after.group(1).lower() in terms.head_nouns:
        return True
    parts = re.split(r"[-'’]", word)
    return bool(possessive and any(p in terms.eponyms for p in parts))


def _tokens(name: str) -> list[str]:
    return TOKEN_RE.findall(name)


def _not_name(word: str, terms: Terms) -> bool:
    return len(word) > 1 and (word in terms.not_names or word.title() in terms.not_names)


def _trim(text: str, start: int, end: int, terms: Terms) -> tuple[int, int]:
    """Drop leading/trailing words that are not names (Seen, Patient, Age, ...); keep initials."""
    keep = list(re.finditer(rf"{WORD}|{UPWORD}|{INITIAL}|{PARTICLE}", text[start:end]))
    while keep and (_not_name(keep[0].group(), terms) or keep[0].group() == "A" or re.fullmatch(PARTICLE, keep[0].group())):
        keep.pop(0)
    while keep and (_not_name(keep[-1].group(), terms) or re.fullmatch(PARTICLE, keep[-1].group())):
        keep.pop()
    if not keep:
        return start, start
    return start + keep[0].start(), start + keep[-1].end()


def _weak_rejected(text: str, start: int, end: int, terms: Terms) -> bool:
    """After a weak cue: medicine if followed by a head noun, or if every word is a medical/place word."""
    words = [w for w in _tokens(text[start:end]) if not re.fullmatch(INITIAL, w)]
    if all(w.lower() in terms.medical_words or w in terms.eponyms or w in terms.countries or w in terms.states
           for w in words):
        return True
    return medical_context(text, start, end, terms)


def cued_names(text: str, terms: Terms) -> Iterator[Hit]:
    for pattern, strength in CUES:
        for m in pattern.finditer(text):
            group = "name2" if "name2" in pattern.groupindex and m.group("name2") else "name"
            start, end = _trim(text, *m.span(group), terms)
            if end <= start:
                continue
            if strength == WEAK and _weak_rejected(text, start, end, terms):
                continue
            if strength == STRONG and medical_context(text, start, end, terms) and end - start == len(_tokens(text[start:end])[-1]):
                continue  # "Mr. Graves disease" is not a sentence; a lone eponym before a head noun is medicine
            yield Hit(start, end, PhiType.NAME, strength)


def propagate(text: str, found: list[Hit], terms: Terms) -> Iterator[Hit]:
    """Every other capitalized mention of a word of a name already found."""
    words: set[str] = set()
    for hit in found:
        for w in _tokens(text[hit.start:hit.end]):
            if len(w) > 1 and not w.endswith(".") and w.title() not in terms.not_names and w not in terms.not_names:
                words.add(w.lower())
    for w in sorted(words):
        for m in re.finditer(rf"(?<![\w'’-]){re.escape(w)}(?![\w-])", text, flags=re.IGNORECASE):
            if not m.group()[0].isupper():
                continue
            if medical_context(text, m.start(), m.end(), terms):
                continue
            yield Hit(m.start(), m.end(), PhiType.NAME, PROPAGATED)


_PARTICLES_BEFORE = re.compile(rf"(?:\b{PARTICLE}[ \t]+)+$")


def _with_particles(text: str, hit: Hit) -> Hit:
    """"Cruz" found in "Dr. de la Cruz" covers "de la Cruz"."""
    m = _PARTICLES_BEFORE.search(text, max(0, hit.start - 20), hit.start)
    return Hit(m.start(), hit.end, hit.type, hit.priority) if m else hit


def find_names(text: str, terms: Terms, protected: list[tuple[int, int]]) -> list[Hit]:
    """Names by cue, then by propagation; nothing inside a ``protected`` range (condition names)."""

    def free(h: Hit) -> bool:
        return not any(s <= h.start and h.end <= e for s, e in protected)

    cued = [h for h in cued_names(text, terms) if free(h)]
    return [_with_particles(text, h) for h in cued + [h for h in propagate(text, cued, terms) if free(h)]]
