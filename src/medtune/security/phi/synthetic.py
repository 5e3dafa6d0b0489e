"""A deterministic synthetic PHI set: clinical notes with every identifier and clinical item marked.

Notes are assembled from the templates in ``resources/phi/synthetic.yaml`` (invented people,
places and numbers) and from the knowledge base (diagnoses, labs with units and ranges). Each
identifier carries its gold span and type, each clinical item (drug and dose, lab value with unit,
vital sign, diagnosis, finding, age up to 89, bare year) its span and kind, so recall and
retention can be measured exactly. Same seed, same notes.
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

import yaml

from ...utils.paths import resource_path
from .types import PhiType

PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)(?::([A-Za-z_.]+))?\}")


@dataclass
class GoldNote:
    id: str
    text: str
    phi: list[tuple[int, int, PhiType]] = field(default_factory=list)
    clinical: list[tuple[int, int, str]] = field(default_factory=list)


@lru_cache(maxsize=1)
def vocabulary() -> dict:
    return yaml.safe_load(resource_path("phi", "synthetic.yaml").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _kb_clinical() -> tuple[list[str], list[tuple[str, str, float, float]]]:
    """Diagnosis names and (lab, unit, low, high) abnormal ranges from the knowledge base."""
    from ...synth.kb import load_kb

    kb = load_kb()
    names = sorted(c.name for c in kb.conditions.values())
    labs = sorted({(lab.name, lab.unit, float(lab.abnormal.min), float(lab.abnormal.max))
                   for c in kb.conditions.values() for lab in c.labs if lab.unit and lab.abnormal})
    return names, labs


class _Person:
    def __init__(self, rng: random.Random, voc: dict, female: bool | None = None):
        self.female = rng.random() < 0.5 if female is None else female
        self.first = rng.choice(voc["people"]["female" if self.female else "male"])
        self.middle = rng.choice(string.ascii_uppercase)
        self.last = rng.choice(voc["people"]["surnames"])


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.digits) for _ in range(n))


def _alnum(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(n))


class _NoteBuilder:
    """Fills one template, recording each placeholder's span."""

    def __init__(self, rng: random.Random, voc: dict, heldout: bool = False):
        self.rng, self.voc, self.heldout = rng, voc, heldout
        self.people = {"patient": _Person(rng, voc), "relative": _Person(rng, voc), "doctor": _Person(rng, voc),
                       "nurse": _Person(rng, voc), "pcp": _Person(rng, voc)}
        self.relation = rng.choice(["daughter", "son", "wife", "husband", "sister", "brother", "niece"])
        self.city, self.state = rng.choice(voc["places"]["cities"])
        self.parts: list[str] = []
        self.length = 0
        self.phi: list[tuple[int, int, PhiType]] = []
        self.clinical: list[tuple[int, int, str]] = []

    def emit(self, text: str, phi: PhiType | None = None, clinical: str | None = None) -> None:
        start = self.length
        self.parts.append(text)
        self.length += len(text)
        if phi is not None:
            self.phi.append((start, self.length, phi))
        if clinical is not None:
            self.clinical.append((start, self.length, clinical))

    def fill(self, template: str) -> None:
        pos = 0
        for m in PLACEHOLDER.finditer(template):
            self.emit(template[pos:m.start()])
            name, form = m.group(1), m.group(2) or ""
            if name == "C":
                self.emit(self.clinical_item(form), clinical=_CLINICAL_KIND.get(form, form))
            elif name in PhiType.__members__:
                for text, is_phi in self.identifier(PhiType(name), form):
                    self.emit(text, PhiType(name) if is_phi else None)
            else:
                self.emit(self.plain(name))
            pos = m.end()
        self.emit(template[pos:])

    # ------------------------------------------------------------------ plain words
    def plain(self, name: str) -> str:
        female = self.people["patient"].female
        words = {"title": self.rng.choice(["Ms.", "Mrs."]) if female else "Mr.", "sex_noun": "woman" if female else "man",
                 "sex_letter": "F" if female else "M", "pronoun": "She" if female else "He",
                 "possessive": "her" if female else "his", "object": "her" if female else "him",
                 "relation": self.relation, "country": self.rng.choice(["Mexico", "Ghana", "India", "Vietnam", "Poland"]),
                 "state_name": self.voc["places"]["state_names"].get(self.state, "Ohio")}
        return words[name]

    # ------------------------------------------------------------------ clinical content
    def clinical_item(self, kind: str) -> str:
        rng, c = self.rng, self.voc["clinical"]
        dx_names, labs = _kb_clinical()
        if kind == "drug":
            return rng.choice(c["drugs"])
        if kind == "dx":
            return rng.choice(c["diagnoses"]) if rng.random() < 0.5 else rng.choice(dx_names)
        if kind == "finding":
            return rng.choice(c["findings"])
        if kind == "vital":
            return _fill_numbers(rng.choice(c["vitals"]), rng)
        if kind == "lab":
            if rng.random() < 0.5 or self.heldout:
                return _fill_numbers(rng.choice(self.voc["heldout"]["extra_labs"] if self.heldout else c["extra_labs"]), rng)
            name, unit, low, high = rng.choice(labs)
            value = rng.uniform(low, high)
            return f"{name} {value:.1f} {unit}" if high < 100 else f"{name} {value:.0f} {unit}"
        age = rng.randint(18, 89)
        if kind == "age_number":
            return str(age)
        if kind == "age":
            return rng.choice([f"{age}-year-old", f"{age} year old", f"{age} yo", f"{age}-yr-old", f"{age} y/o"])
        if kind == "year":
            return str(rng.randint(1975, 2024))
        raise ValueError(f"unknown clinical placeholder {kind!r}")

    # ------------------------------------------------------------------ identifiers
    def identifier(self, kind: PhiType, form: str) -> list[tuple[str, bool]]:
        """Pieces of one identifier: (text, is it part of the identifier)."""
        if kind is PhiType.NAME:
            return self.name(form)
        if kind is PhiType.LOCATION:
            return self.location(form)
        return [(_IDENTIFIERS[kind](self.rng, form, self), True)]

    def name(self, form: str) -> list[tuple[str, bool]]:
        role, _, shape = form.partition(".")
        p = self.people[role]
        return {
            "full": [(f"{p.first} {p.last}", True)],
            "first": [(p.first, True)],
            "last": [(p.last, True)],
            "last_first": [(f"{p.last}, {p.first}", True)],
            "upper_last_first": [(f"{p.last.upper()}, {p.first.upper()} {p.middle}", True)],
        }[shape]

    def location(self, form: str) -> list[tuple[str, bool]]:
        rng, pl = self.rng, self.voc["places"]
        street = f"{rng.randint(1, 9999)} {rng.choice(pl['streets'])}"
        zip_code = _digits(rng, 5) if rng.random() < 0.8 else f"{_digits(rng, 5)}-{_digits(rng, 4)}"
        return {
            "street": [(street, True)],
            "street_unit": [(f"{street}, {rng.choice(pl['units'])}", True)],
            "city_state_zip": [(self.city, True), (f", {self.state} ", False), (zip_code, True)],
            "city_state": [(self.city, True), (f", {self.state}", False)],
            "city": [(self.city, True)],
            "zip": [(zip_code, True)],
            "county": [(rng.choice(pl["counties"]), True)],
            "facility": [(rng.choice(pl["facilities"]), True)],
        }[form]


_CLINICAL_KIND = {"drug": "drug", "dx": "diagnosis", "finding": "finding", "vital": "vital", "lab": "lab",
                  "age": "age", "age_number": "age", "year": "year"}


def _fill_numbers(template: str, rng: random.Random) -> str:
    values = {"sbp": rng.randint(85, 210), "dbp": rng.randint(45, 125), "hr": rng.randint(40, 160),
              "rr": rng.randint(10, 36), "temp": f"{rng.uniform(35.0, 40.5):.1f}", "tempf": f"{rng.uniform(95.0, 104.5):.1f}",
              "spo2": rng.randint(78, 100), "wt": rng.randint(40, 160), "bmi": f"{rng.uniform(16, 48):.1f}",
              "wbc": f"{rng.uniform(1.5, 28):.1f}", "hb": f"{rng.uniform(5.5, 17.5):.1f}", "plt": rng.randint(20, 650),
              "k": f"{rng.uniform(2.5, 7.2):.1f}", "na": rng.randint(118, 158), "cr": f"{rng.uniform(0.4, 9.5):.1f}",
              "a1c": f"{rng.uniform(4.8, 14.0):.1f}", "trop": f"{rng.uniform(0.01, 25):.2f}", "lac": f"{rng.uniform(0.5, 12):.1f}",
              "inr": f"{rng.uniform(0.9, 6.0):.1f}", "crp": rng.randint(1, 320), "tsh": f"{rng.uniform(0.01, 60):.2f}",
              "big": rng.randint(1, 999), "bigraw": rng.randint(1_000_000, 9_000_000), "qtc": rng.randint(380, 560),
              "ph": f"{rng.uniform(6.9, 7.6):.2f}", "uo": rng.randint(100, 3500), "bnp": rng.randint(20, 4500)}
    return template.format(**values)


_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _date(rng: random.Random, form: str, _b: _NoteBuilder | None = None) -> str:
    y, m, d = rng.randint(1930, 2025), rng.randint(1, 12), rng.randint(1, 28)
    month, short = _MONTHS[m - 1], _MONTHS[m - 1][:3]
    forms = {
        "numeric": rng.choice([f"{m:02d}/{d:02d}/{y}", f"{m}/{d}/{y}", f"{m}/{d}/{y % 100:02d}", f"{m:02d}-{d:02d}-{y}"]),
        "iso": f"{y}-{m:02d}-{d:02d}",
        "long": rng.choice([f"{month} {d}, {y}", f"{d} {month} {y}"]),
        "short_month": rng.choice([f"{short} {d}, {y}", f"{d}-{short}-{y}", f"{short}. {d}"]),
        "month_day": rng.choice([f"{month} {d}", f"{short} {d}", f"{month} {d}th" if d > 3 else f"{month} {d}"]),
        "day_month": rng.choice([f"{d}th of {month}" if d > 3 else f"{d} {month}", f"{d} {month}"]),
        "month_year": rng.choice([f"{month} {y}", f"{short} {y}", f"{m:02d}/{y}"]),
        "month_only": month,
        "slash_md": f"{m}/{d}",
        "ordinal": f"{month} {d}{'th' if d > 3 else ['', 'st', 'nd', 'rd'][d]}",
    }
    return forms[form]


def _age(rng: random.Random, form: str, _b: _NoteBuilder | None = None) -> str:
    age = rng.randint(90, 104)
    return {"number": str(age), "bare": str(age), "yo_hyphen": rng.choice([f"{age}-year-old", f"{age} year old"]),
            "yo_short": rng.choice([f"{age} yo", f"{age} y/o", f"{age}-yr-old"])}[form]


def _phone(rng: random.Random, form: str = "", _b: _NoteBuilder | None = None) -> str:
    a, b, c = rng.randint(201, 989), rng.randint(200, 999), _digits(rng, 4)
    return rng.choice([f"({a}) {b}-{c}", f"{a}-{b}-{c}", f"{a}.{b}.{c}", f"+1 {a} {b} {c}", f"1-{a}-{b}-{c}",
                       f"({a}) {b}-{c} ext. {rng.randint(10, 999)}"])


def _mbi(rng: random.Random) -> str:
    """A Medicare Beneficiary Identifier in CMS's shape (C A AN N - A AN N - A A N N), letters without S L O I B Z."""
    alpha = "ACDEFGHJKMNPQRTUVWXY"
    an = alpha + string.digits
    c = [str(rng.randint(1, 9)), rng.choice(alpha), rng.choice(an), rng.choice(string.digits), rng.choice(alpha),
         rng.choice(an), rng.choice(string.digits), rng.choice(alpha), rng.choice(alpha), rng.choice(string.digits),
         rng.choice(string.digits)]
    return f"{''.join(c[:4])}-{''.join(c[4:7])}-{''.join(c[7:])}"


def _vehicle(rng: random.Random, form: str, _b: _NoteBuilder | None = None) -> str:
    if form == "plate":
        return rng.choice([f"{rng.randint(1, 9)}{_alnum(rng, 3)}{_digits(rng, 3)}", f"{_alnum(rng, 3)}-{_digits(rng, 4)}"])
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    return "".join(rng.choice(chars) for _ in range(11)) + _digits(rng, 6)


def _license(rng: random.Random, form: str, _b: _NoteBuilder | None = None) -> str:
    if form == "dea":
        return f"{rng.choice('ABFM')}{rng.choice(string.ascii_uppercase)}{_digits(rng, 7)}"
    if form == "npi":
        return _digits(rng, 10)
    return rng.choice([f"{rng.choice(string.ascii_uppercase)}{_digits(rng, 3)}-{_digits(rng, 4)}-{_digits(rng, 4)}",
                       f"{rng.choice(string.ascii_uppercase)}{_digits(rng, 7)}", _digits(rng, 9)])


def _device(rng: random.Random, form: str, _b: _NoteBuilder | None = None) -> str:
    if form == "udi":
        return f"(01){_digits(rng, 14)}(17){_digits(rng, 6)}(10){_alnum(rng, 5)}"
    return rng.choice([f"{_alnum(rng, 3)}{_digits(rng, 6)}{rng.choice(string.ascii_uppercase)}", f"{_digits(rng, 4)}-{_digits(rng, 5)}",
                       f"RS-{_digits(rng, 8)}", _digits(rng, 15)])


_IDENTIFIERS = {
    PhiType.DATE: _date,
    PhiType.AGE: _age,
    PhiType.PHONE: _phone,
    PhiType.FAX: _phone,
    PhiType.EMAIL: lambda rng, form, b: rng.choice([
        f"{b.people['patient'].first.lower()}.{b.people['patient'].last.lower()}", f"{b.people['patient'].first[0].lower()}{b.people['patient'].last.lower()}{rng.randint(1, 99)}",
        f"pt{_digits(rng, 5)}"]).replace("'", "").replace(" ", "") + "@" + rng.choice(b.voc["places"]["email_domains"]),
    PhiType.URL: lambda rng, form, b: rng.choice(["https://", "http://", "", "www."]).replace("www.", "") + rng.choice(
        b.voc["places"]["url_hosts"]) + rng.choice([f"/patient/{_digits(rng, 6)}", f"/u/{b.people['patient'].first.lower()}{_digits(rng, 3)}",
                                                    f"/visit?id={_digits(rng, 5)}"]),
    PhiType.IP: lambda rng, form, b: rng.choice([f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                                                 f"2001:db8:{rng.randint(0, 65535):x}::{rng.randint(1, 65535):x}"]),
    PhiType.SSN: lambda rng, form, b: rng.choice([f"{_digits(rng, 3)}-{_digits(rng, 2)}-{_digits(rng, 4)}",
                                                  f"{_digits(rng, 3)} {_digits(rng, 2)} {_digits(rng, 4)}", _digits(rng, 9)]),
    PhiType.MRN: lambda rng, form, b: rng.choice([_digits(rng, 8), _digits(rng, 7), f"A{_digits(rng, 7)}", f"{_digits(rng, 2)}-{_digits(rng, 6)}"]),
    PhiType.HEALTH_PLAN: lambda rng, form, b: (_mbi(rng) if form == "mbi"
                                               else rng.choice([f"XEH{_digits(rng, 9)}", f"W{_digits(rng, 10)}", f"BCX-{_digits(rng, 4)}-{_digits(rng, 4)}"])),
    PhiType.ACCOUNT: lambda rng, form, b: rng.choice([_digits(rng, 9), f"{_digits(rng, 2)}-{_digits(rng, 4)}-{_digits(rng, 3)}", _digits(rng, 10)]),
    PhiType.LICENSE: _license,
    PhiType.VEHICLE: _vehicle,
    PhiType.DEVICE: _device,
    PhiType.ID: lambda rng, form, b: rng.choice([f"MT-{_digits(rng, 4)}-{_digits(rng, 3)}", f"S{_digits(rng, 2)}-{_digits(rng, 5)}",
                                                 f"CLM-{_digits(rng, 8)}", f"BB-{_digits(rng, 7)}"]),
}


def generate_note(index: int, seed: int = 0, heldout: bool = False) -> GoldNote:
    """One synthetic note; the same (index, seed, heldout) always gives the same note."""
    rng = random.Random(f"{seed}:{index}:{'heldout' if heldout else 'main'}")
    voc = vocabulary()
    b = _NoteBuilder(rng, voc, heldout)
    sections = voc["heldout"]["sections"] if heldout else voc["sections"]
    for section, variants in sections.items():
        count = rng.choice([2, 3]) if section == "identifiers" else 1
        for template in rng.sample(variants, count):
            b.fill(template)
    kind = "heldout" if heldout else "synthetic"
    return GoldNote(f"{kind}-{seed}-{index}", "".join(b.parts), b.phi, b.clinical)


def generate_phi_set(min_per_type: int = 50, seed: int = 0, max_notes: int = 2000, heldout: bool = False) -> list[GoldNote]:
    """Notes until every identifier type has at least ``min_per_type`` instances.

    ``heldout=True``: the held-out templates, never used to tune the recognizers (see the YAML).
    """
    notes: list[GoldNote] = []
    counts: Counter = Counter()
    while min((counts[t] for t in PhiType), default=0) < min_per_type:
        if len(notes) >= max_notes:
            short = {t.value: counts[t] for t in PhiType if counts[t] < min_per_type}
            raise RuntimeError(f"templates too sparse: after {max_notes} notes still short of {short}")
        note = generate_note(len(notes), seed, heldout)
        notes.append(note)
        counts.update(t for _, _, t in note.phi)
    return notes
