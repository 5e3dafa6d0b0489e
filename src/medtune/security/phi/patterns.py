"""Recognizers for the structured identifiers: each a regex, the type it finds, a validator.

Three kinds, by confidence (the ``priority`` decides the type where spans overlap):
* a cue phrase and the token after it (``MRN: 00482913``, ``VIN ...``, ``serial number ...``);
* a shape that is an identifier on its own (e-mail, URL, IPv4/IPv6, phone, SSN, dates, UDI, VIN);
* a fallback for long digit strings not followed by a unit (other unique identifiers).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .terms import Terms, load_terms
from .types import PhiType

Validator = Callable[[re.Match, Terms], bool]


@dataclass(frozen=True, order=True)
class Hit:
    start: int
    end: int
    type: PhiType
    priority: int


@dataclass(frozen=True)
class Recognizer:
    type: PhiType
    pattern: re.Pattern
    priority: int
    validate: Validator | None = None
    group: str | int = "id"


def _digit_count(m: re.Match, _t: Terms) -> bool:
    return sum(ch.isdigit() for ch in m.group("id")) >= 3


# A token after a cue: letters, digits, inner - / . and digit groups separated by single spaces.
ID_TOKEN = r"(?P<id>(?:\(\d{2}\)[A-Za-z0-9]+)+|(?=[^\s]*\d)[A-Za-z0-9](?:[A-Za-z0-9]|[-/.](?=[A-Za-z0-9])){2,39}(?:\s\d[\d-]*){0,3})"
GLUE = r"(?:\s*(?i:number|num|nbr|no|identifier|id)\b\.?)?(?:\s*[:#=]){0,2}\s*(?:(?i:is)\s+)?"


def _cue(words: str) -> str:
    return rf"\b(?i:{words})(?!\w)\.?" + GLUE + ID_TOKEN


CUES: dict[PhiType, str] = {
    PhiType.SSN: r"ssn|ss\#|social\s+security(?:\s+(?:number|no|\#))?",
    PhiType.MRN: r"mrn|mr\#|mr\s+number|medical\s+record(?:\s+(?:number|no|\#))?|med\s+rec(?:ord)?|chart\s+(?:number|no|\#)"
                 r"|hospital\s+number|unit\s+number|patient\s+id",
    PhiType.HEALTH_PLAN: r"member(?:\s+(?:id|number|\#))?|subscriber(?:\s+id)?|policy(?:\s+(?:number|no|\#))?|group\s+(?:number|no|\#)"
                         r"|insurance(?:\s+(?:id|number))?|health\s+plan(?:\s+(?:id|number))?|beneficiary(?:\s+(?:id|number))?"
                         r"|medicare(?:\s+(?:id|number|\#))?|medicaid(?:\s+(?:id|number|\#))?|mbi|hicn|plan\s+id",
    PhiType.ACCOUNT: r"account|acct|billing\s+account|encounter\s+(?:number|no|id|\#)|visit\s+(?:number|no|id|\#)|fin|invoice",
    PhiType.LICENSE: r"driver'?s\s+licen[cs]e|dl\#?|licen[cs]e|dea(?:\s+registration)?|npi|certificate|board\s+certification",
    PhiType.VEHICLE: r"vin|vehicle\s+identification(?:\s+number)?|vehicle\s+id|licen[cs]e\s+plate|plate|tag(?:\s+number)?|registration\s+plate",
    PhiType.DEVICE: r"serial(?:\s+(?:number|no|\#))?|s/n|sn|device\s+(?:id|identifier|serial)|udi|imei|lot(?:\s+(?:number|\#))?"
                    r"|model\s+(?:number|no|\#)|implant\s+id",
    PhiType.ID: r"study\s+id|subject\s+id|participant\s+id|case\s+(?:number|no|\#)|accession|specimen(?:\s+id)?|requisition"
                r"|order\s+(?:number|no|\#)|claim(?:\s+(?:number|no|\#))?|passport(?:\s+(?:number|no))?|employee\s+id"
                r"|badge(?:\s+number)?|student\s+id|biobank\s+id|sample\s+id|registry\s+id|id",
}
# "license plate" must read as a vehicle, not as a license: more specific cues win on equal spans
CUE_PRIORITY = {PhiType.VEHICLE: 93, PhiType.SSN: 92, PhiType.MRN: 91, PhiType.ID: 85}

# Units after a number make it a measurement (viral loads and cell counts run to 7+ digits).
UNITS = (r"mg|mcg|ug|µg|g|kg|ml|mL|L|dL|units?|IU|U|%|/|copies|cells|cells/|mmol|mEq|ng|pg|fL|mm|cm|ms|bpm|mmHg"
         r"|x10|×10|per|/uL|/µL|/mm3|counts?|CFU|cfu|colonies|steps|kcal|cal")

MONTH = (r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
         r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)")
FULL_MONTH = r"(?:January|February|March|April|May|June|July|August|September|October|November|December)"
DAY = r"(?:0?[1-9]|[12]\d|3[01])"
MON_NUM = r"(?:0?[1-9]|1[0-2])"
ORD = r"(?:st|nd|rd|th)?"
DATE_PATTERNS = [
    rf"\b{MON_NUM}[/.-]{DAY}[/.-](?:\d{{4}}|\d{{2}})\b",
    rf"\b{DAY}[/.-]{MON_NUM}[/.-]\d{{4}}\b",
    rf"\b(?:19|20)\d{{2}}[-/.]{MON_NUM}[-/.]{DAY}(?:[T ]\d{{1,2}}:\d{{2}}(?::\d{{2}})?)?\b",
    rf"\b{MONTH}\.?\s+{DAY}{ORD}\b(?:,?\s+\d{{4}}\b)?",
    rf"\b{DAY}{ORD}\s+(?:of\s+)?{MONTH}\b\.?(?:,?\s+\d{{4}}\b)?",
    rf"\b{DAY}-{MONTH}-\d{{2,4}}\b",
    rf"\b{MONTH}\.?,?\s+(?:19|20)\d{{2}}\b",
    rf"\b{MON_NUM}/(?:19|20)\d{{2}}\b",
    rf"(?i:\b(?:on|since|from|until|till|by|dated?|seen|admitted|discharged|dos|as\s+of|starting|through|before|after)\s+)(?P<id>{MON_NUM}/{DAY})\b(?![/.]\d)",
    rf"(?i:\b(?:in|since|during|until|through|by|from|last|this|next|early|mid|late|before|after)[\s-]+)(?P<id>{FULL_MONTH})\b",
]

AGE_PATTERNS = [
    r"\b(?P<id>(?P<n>\d{2,3})\s*(?:-\s*|\s)?(?:years?|yrs?)\s*(?:-\s*|\s)?old)\b",
    r"\b(?P<id>(?P<n>\d{2,3})\s*(?:y/o|y\.o\.|yo|yr\s+old|yrs\s+old))(?![\w/])",
    r"\b(?P<id>(?P<n>\d{2,3}))(?:M|F)\b",  # "94F" in a header; temperatures are refused by the validator
    r"(?i:\b(?:age[ds]?|aged|lived\s+to|died\s+at|turned|turning|passed\s+away\s+at|age\s+of)\s*[:=]?\s*)(?P<id>(?P<n>\d{2,3}))\b(?![.:/]\d)",
]

STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Ter"
                 r"|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Trail|Trl|Loop|Pike|Row|Alley|Crescent)")
STREET = (rf"\b\d{{1,6}}\s+(?:[NSEW]\.?\s+)?(?:(?:[A-Z][A-Za-z0-9'’-]*\.?\s+){{1,4}}{STREET_SUFFIX}\b\.?|Broadway\b)"
          r"(?:,?\s*(?:Apt|Apartment|Unit|Suite|Ste|Room|Rm|Lot|Fl|Floor)\.?\s*#?\s*[A-Za-z0-9-]+|,?\s*#\s*\d+[A-Za-z]?)?")
PLACE = r"(?:(?:St\.|Saint|Santa|San|Fort|Ft\.|Mount|Mt\.)\s+)?[A-Z][a-z]+(?:[ -][A-Z][a-z]+){0,2}"
FACILITY = (r"(?:Hospital|Medical\s+Center|Health\s+Center|Clinic|Nursing\s+Home|Rehabilitation\s+Center|Rehab\s+Center"
            r"|Care\s+Center|Infirmary|Hospice|Health\s+System|Surgery\s+Center|Senior\s+Living)")


def _compile(p: str) -> re.Pattern:
    return re.compile(p)


def _valid_ip(m: re.Match, _t: Terms) -> bool:
    try:
        ipaddress.ip_address(m.group("id"))
        return True
    except ValueError:
        return False


# "T 101F" is a temperature; "DIALLO, JAMES T  97M" is a middle initial then an age
_TEMPERATURE = re.compile(r"(?:(?i:\b(?:temp|temperature|tmax|febrile\s+to|fever\s+(?:of|to)))|(?<![A-Z]{2} )\bT)[\s:=]*$")


def _age_over_89(m: re.Match, _t: Terms) -> bool:
    before = m.string[max(0, m.start() - 24):m.start()]
    return 90 <= int(m.group("n")) <= 130 and not _TEMPERATURE.search(before)


def _luhn(m: re.Match, _t: Terms) -> bool:
    digits = [int(c) for c in m.group("id") if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2) for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


def _city_state(m: re.Match, t: Terms) -> bool:
    """A city before a state; "Sven White, MD" (no ZIP) is a clinician with a credential, not Maryland."""
    if re.search(r",\s*(?:MD|PA|DO)$", m.group("id")):
        return False
    return m.group("city").split()[0] not in t.not_names and m.group("city") not in t.countries


def _place(m: re.Match, t: Terms) -> bool:
    first = m.group("id").split()[0]
    return first not in t.not_names and m.group("id") not in t.countries and m.group("id") not in t.states


def _facility(m: re.Match, t: Terms) -> bool:
    words = re.findall(r"[A-Za-z']+", m.group("id"))
    return not all(w.removesuffix("'s") in t.not_names for w in words[:-1])


def _state_alternation(t: Terms) -> str:
    names = sorted(t.states, key=len, reverse=True)
    return "(?:" + "|".join(sorted(t.state_codes)) + "|" + "|".join(re.escape(n) for n in names) + ")"


def build_recognizers(t: Terms) -> list[Recognizer]:
    r: list[Recognizer] = []
    for kind, words in CUES.items():
        r.append(Recognizer(kind, _compile(_cue(words)), CUE_PRIORITY.get(kind, 90), _digit_count))
    r += [
        Recognizer(PhiType.DEVICE, _compile(r"(?P<id>\(01\)\d{14}(?:\(\d{2,4}\)[A-Za-z0-9]+)*)"), 95),
        Recognizer(PhiType.EMAIL, _compile(r"(?P<id>[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z]{2,})\b"), 98),
        Recognizer(PhiType.URL, _compile(r"(?P<id>\b(?:https?://|www\.)[^\s<>\"']+)"), 97),
        Recognizer(PhiType.URL, _compile(r"(?P<id>\b(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+(?:com|org|net|edu|gov|mil|io|us|info"
                                         r"|biz|health|care|app|co|uk|ca)\b(?:/[^\s<>\"']*)?)"), 96),
        Recognizer(PhiType.IP, _compile(r"(?P<id>\b(?:\d{1,3}\.){3}\d{1,3}\b)"), 70, _valid_ip),
        Recognizer(PhiType.IP, _compile(r"(?P<id>(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:]))"), 70, _valid_ip),
        Recognizer(PhiType.FAX, _compile(r"(?i:\bfax\b(?:\s+(?:number|no\.?|\#|results|records|to))*\s*[:#]?\s*(?:\w+\s+){0,3}?)(?P<id>(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4})\b"), 67),
        Recognizer(PhiType.PHONE, _compile(r"(?P<id>(?<![\w/])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5})?)\b"), 65),
        Recognizer(PhiType.PHONE, _compile(r"(?i:\b(?:phone|tel|telephone|cell|mobile|home|work|pager|call|contact|ph)\b\.?\s*[:#]?\s*)(?P<id>\d{10})\b"), 65),
        Recognizer(PhiType.SSN, _compile(r"(?P<id>\b\d{3}-\d{2}-\d{4}\b|\b\d{3} \d{2} \d{4}\b)"), 60),
        Recognizer(PhiType.ACCOUNT, _compile(r"(?P<id>\b(?:\d[ -]?){12,18}\d\b)"), 58, _luhn),
        Recognizer(PhiType.VEHICLE, _compile(r"(?P<id>\b(?=(?:\d*[A-HJ-NPR-Z]){3})(?=(?:[A-Z]*\d){3})[A-HJ-NPR-Z0-9]{17}\b)"), 57),
    ]
    r += [Recognizer(PhiType.DATE, _compile(p if "(?P<id>" in p else f"(?P<id>{p})"), 55) for p in DATE_PATTERNS]
    r += [Recognizer(PhiType.AGE, _compile(p), 50, _age_over_89) for p in AGE_PATTERNS]
    r += _location_recognizers(t)
    r += [
        Recognizer(PhiType.ID, _compile(rf"(?P<id>(?<![\w.,/-])\d{{7,}}(?![\w,/]|\.\d|\s*(?:{UNITS})(?![A-Za-z])))"), 10),
        Recognizer(PhiType.ID, _compile(r"(?P<id>\b[A-Z]{1,4}-?\d{4,}[A-Z0-9-]*\b)"), 10),
        Recognizer(PhiType.ID, _compile(r"(?P<id>\b\d{2,}(?:-\d{2,}){2,}\b)"), 10),
    ]
    return r


def _location_recognizers(t: Terms) -> list[Recognizer]:
    states = _state_alternation(t)
    return [
        Recognizer(PhiType.LOCATION, _compile(f"(?P<id>{STREET})"), 45),
        Recognizer(PhiType.LOCATION, _compile(rf"(?P<id>(?P<city>\b{PLACE}),\s*{states}\b(?:\s+\d{{5}}(?:-\d{{4}})?\b)?)"), 45, _city_state),
        Recognizer(PhiType.LOCATION, _compile(r"(?P<id>\b(?:[A-Z][a-z]+\s+){1,2}(?:County|Parish|Borough)\b)"), 45),
        Recognizer(PhiType.LOCATION, _compile(r"(?i:\b(?:zip(?:\s*code)?|postal\s+code)\s*[:#]?\s*)(?P<id>\d{5}(?:-\d{4})?)\b"), 45),
        Recognizer(PhiType.LOCATION, _compile(r"(?i:\b(?:home\s+|mailing\s+)?address\s*[:\-]\s*)(?P<id>[^\n]{3,100}?)\s*(?=\n|$)"), 44),
        Recognizer(PhiType.LOCATION, _compile(rf"(?P<id>\b(?:(?:St\.|Saint)\s+)?(?:[A-Z][a-z'’]+(?:'s)?\s+){{1,4}}{FACILITY})\b"), 45, _facility),
        Recognizer(PhiType.LOCATION, _compile(rf"\b{FACILITY}\s+in\s+(?P<id>{PLACE})\b"), 45, _place),
        Recognizer(PhiType.LOCATION, _compile(
            r"(?i:\b(?:lives|living|live|resides|residing|moved|relocated|born|raised|grew\s+up|works|working|stationed|located)"
            r"\s+(?:alone\s+)?(?:in|at|to|near|from|back\s+to)\s+(?:the\s+)?)" + rf"(?P<id>{PLACE})\b"), 44, _place),
    ]


@dataclass
class StructuredRecognizer:
    """All the structured recognizers, compiled once."""

    terms: Terms
    recognizers: list[Recognizer]

    @classmethod
    def default(cls) -> StructuredRecognizer:
        terms = load_terms()
        return cls(terms, build_recognizers(terms))

    def find(self, text: str) -> Iterator[Hit]:
        for rec in self.recognizers:
            for m in rec.pattern.finditer(text):
                if rec.validate is not None and not rec.validate(m, self.terms):
                    continue
                start, end = m.span(rec.group)
                while end > start and text[end - 1] in ".,;:!?)'\"" and rec.type in (PhiType.URL, PhiType.LOCATION, PhiType.ID):
                    end -= 1
                if end > start:
                    yield Hit(start, end, rec.type, rec.priority)
