"""Write sampled facts up as text: vignette, structured reasoning, reference answer, case dict.

Everything here is deterministic on (facts, condition): no random draws; the wording choices
were drawn with the case (``prose.sample_style``, stored in ``f["style"]``). Texts are kept
compact on purpose (a vignette of a few sentences, reasoning of ~80-150 words) because
CPU training runs at ~110 tokens/s.
"""

from __future__ import annotations

import re
from typing import Any

from .kb_schema import Condition
from .prose import load_phrasing
from .sampling import Prepared, fmt_num

_VITAL_TEXT = {
    "temperature": "temperature {} °C", "heart_rate": "heart rate {}/min", "respiratory_rate": "respiratory rate {}/min",
    "spo2": "SpO2 {}% on room air",
}


def age_text(age: float) -> str:
    """Age as a vignette states it.

    >>> age_text(0.05), age_text(0.75), age_text(1.5), age_text(58.0)
    ('3-week-old', '9-month-old', '18-month-old', '58-year-old')
    """
    if age < 0.083:
        return f"{max(1, round(age * 52))}-week-old"
    if age < 2:
        return f"{max(1, round(age * 12))}-month-old"
    return f"{int(age)}-year-old"


def person_noun(age: float, sex: str) -> str:
    """'man', 'girl', 'infant boy'... as a vignette would say it.

    >>> person_noun(0.5, "male"), person_noun(15, "female"), person_noun(40, "female")
    ('boy', 'girl', 'woman')
    """
    if age < 18:
        return "boy" if sex == "male" else "girl"
    return "man" if sex == "male" else "woman"


def join_list(items: list[str]) -> str:
    """Oxford-comma list.

    >>> join_list(["a"]), join_list(["a", "b"]), join_list(["a", "b", "c"])
    ('a', 'a and b', 'a, b, and c')
    """
    if len(items) <= 2:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def lc_first(text: str) -> str:
    """Lower-case a KB phrase's first letter for use mid-sentence, keeping acronyms.

    >>> lc_first("Aspirin 300 mg"), lc_first("CT angiography"), lc_first("IV fluids")
    ('aspirin 300 mg', 'CT angiography', 'IV fluids')
    """
    if len(text) > 1 and text[1].isupper():
        return text
    return text[:1].lower() + text[1:]


def _duration_text(d: dict[str, Any]) -> str:
    v, unit = d["value"], d["unit"]
    return f"{fmt_num(v)} {unit[:-1] if v == 1 else unit}"


def vitals_text(v: dict[str, float]) -> str:
    bp = f"blood pressure {fmt_num(v['systolic_bp'])}/{fmt_num(v['diastolic_bp'])} mmHg"
    parts = [_VITAL_TEXT["temperature"].format(fmt_num(v["temperature"])), _VITAL_TEXT["heart_rate"].format(fmt_num(v["heart_rate"])),
             bp, _VITAL_TEXT["respiratory_rate"].format(fmt_num(v["respiratory_rate"])), _VITAL_TEXT["spo2"].format(fmt_num(v["spo2"]))]
    return ", ".join(parts)


def lab_text(lab: dict[str, Any]) -> str:
    lo, hi = lab["reference"]
    return f"{lab['name']} {fmt_num(lab['value'])} {lab['unit']} (ref {fmt_num(lo)}-{fmt_num(hi)})"


def _pron(f: dict[str, Any]) -> tuple[str, str, str]:
    """Subject, possessive and object pronouns."""
    return ("He", "His", "him") if f["sex"] == "male" else ("She", "Her", "her")


def lab_name_mid(name: str) -> str:
    """A lab name as it reads mid-sentence: 'Hemoglobin' -> 'hemoglobin', acronyms kept.

    >>> lab_name_mid("Hemoglobin"), lab_name_mid("C-reactive protein"), lab_name_mid("TSH"), lab_name_mid("Free T4")
    ('hemoglobin', 'C-reactive protein', 'TSH', 'free T4')
    """
    return name if re.match(r"^[A-Z](?:[A-Z0-9]|-)", name) or not name[:1].isupper() else name[0].lower() + name[1:]


def lab_mention(lab: dict[str, Any], style: dict[str, Any] | None) -> str:
    """'Plasma glucose 486 mg/dL' as the stem prints it (reasoning cites the same words)."""
    name = lab["name"] if not style or style["labs"] == 0 else lab_name_mid(lab["name"])
    return f"{name} {fmt_num(lab['value'])} {lab['unit']}"


_RESULT_WORDS = ("within", "normal", "negative", "positive", "absent", "no ")


def imaging_mention(im: dict[str, Any], style: dict[str, Any] | None) -> str:
    """'Chest radiograph shows ...' or 'Urine drug screen: negative' (a bare result takes the colon)."""
    verb = style and style["imaging"] == 1 and not im["finding"].lower().startswith(_RESULT_WORDS)
    return f"{im['study']} shows {im['finding']}" if verb else f"{im['study']}: {im['finding']}"


def shown(f: dict[str, Any], text: str) -> str:
    """A symptom or exam finding as this case words it."""
    return f.get("style", {}).get("shown", {}).get(text, text)


def _opening(f: dict[str, Any], st: dict[str, Any], onset: str) -> str:
    who = f"{age_text(f['age'])} {f['ethnicity']} {person_noun(f['age'], f['sex'])}" + (" who is pregnant" if f["pregnant"] else "")
    cc, dur = f'"{f["chief_complaint"]}"', _duration_text(f["duration"])
    setting = "emergency department" if onset in ("sudden", "acute") else "clinic"
    _, poss, obj = _pron(f)
    frames = [f"A {who} presents with {cc} for {dur}.", f"A {who} is seen because of {cc} that began {dur} ago.",
              f"A {who} comes to the {setting} with {cc} for {dur}.", f"A {who} reports {cc}, present for {dur}."]
    if f["age"] < 12:
        frames[1] = f"A {who} is brought in by {poss.lower()} parents because of {cc} for {dur}."
        frames[3] = f"The parents of a {who} bring {obj} in because of {cc} that began {dur} ago."
    return frames[st["opening"]]


# Compact cases (CPU training budgets) print at most this many of each, the condition's own first.
COMPACT_CAPS = {"symptoms": 3, "exam": 2, "imaging": 1}


def shown_symptoms(f: dict[str, Any]) -> list[str]:
    order = f["style"]["symptom_order"]
    if not f["style"]["compact"]:
        return order
    own = [x for x in order if x in f["symptoms"]][: COMPACT_CAPS["symptoms"]]
    return [x for x in order if x in own]


def shown_exam(f: dict[str, Any]) -> list[str]:
    return f["style"]["exam_order"][: COMPACT_CAPS["exam"]] if f["style"]["compact"] else f["style"]["exam_order"]


def shown_imaging(f: dict[str, Any]) -> list[dict[str, Any]]:
    return f["imaging"][: COMPACT_CAPS["imaging"]] if f.get("style", {}).get("compact") else f["imaging"]


def _symptom_sentence(f: dict[str, Any], st: dict[str, Any]) -> str | None:
    items = [shown(f, x) for x in shown_symptoms(f)]
    if not items:
        return None
    pron, poss, _ = _pron(f)
    frames = (["The parents report {}.", f"{poss} parents have noticed {{}}.", "Associated symptoms include {}.",
               "The parents describe {}."] if f["age"] < 12 else
              [f"{pron} reports {{}}.", f"{pron} also describes {{}}.", "Associated symptoms include {}.", f"{pron} mentions {{}}."])
    return frames[st["symptom_frame"]].format(join_list(items))


def _negative_sentences(f: dict[str, Any], st: dict[str, Any], kind: str) -> list[str]:
    negatives = st["negatives"][:1] if st["compact"] else st["negatives"]
    items = [x["text"] for x in negatives if x["kind"] == kind]
    if not items:
        return []
    neg = load_phrasing().negatives
    key = "exam_frames" if kind == "exam" else ("symptom_frames_child" if f["age"] < 12 else "symptom_frames")
    frames = neg[key]
    joined = " or ".join([", ".join(items[:-1]), items[-1]] if len(items) > 2 else items)
    return [frames[st["negative_frame"] % len(frames)].format(x=joined, Pron=_pron(f)[0])]


def _history_sentences(f: dict[str, Any], st: dict[str, Any]) -> list[str]:
    pron, poss, _ = _pron(f)
    out = [f"{poss} history includes {join_list(f['risk_factors'])}."] if f["risk_factors"] else []
    if st["history"]:
        incidental = f"{pron} {join_list(st['history'][:1] if st['compact'] else st['history'])}."
        out = [incidental, *out] if st["history_first"] else [*out, incidental]
    return out


def _vitals_sentence(f: dict[str, Any], st: dict[str, Any]) -> str:
    v = f["vitals"]
    t, hr, rr, sp = (fmt_num(v[k]) for k in ("temperature", "heart_rate", "respiratory_rate", "spo2"))
    bp = f"{fmt_num(v['systolic_bp'])}/{fmt_num(v['diastolic_bp'])}"
    if st["vitals"] == 3 or st["compact"]:
        return f"T {t} °C, HR {hr}, BP {bp}, RR {rr}, SpO2 {sp}% (room air)."
    if st["vitals"] == 1:
        tf = fmt_num(round(v["temperature"] * 9 / 5 + 32, 1))
        return (f"Temperature {t} °C ({tf} °F), heart rate {hr}/min, blood pressure {bp} mmHg and respiratory rate "
                f"{rr}/min; oxygen saturation is {sp}% on room air.")
    if st["vitals"] == 2:
        warm = "febrile at" if v["temperature"] >= 38 else "slightly warm at" if v["temperature"] >= 37.5 else "afebrile at"
        return (f"On arrival {_pron(f)[0].lower()} is {warm} {t} °C, with a heart rate of {hr}/min, blood pressure of "
                f"{bp} mmHg, respiratory rate of {rr}/min and SpO2 of {sp}% on room air.")
    return f"Vital signs: {vitals_text(v)}."


def _exam_sentence(f: dict[str, Any], st: dict[str, Any]) -> str:
    items = [shown(f, x) for x in shown_exam(f)]
    if not items:
        return "Examination is otherwise unremarkable."
    frames = ["Examination shows {}.", "On examination there is {}.", "Physical examination is notable for {}."]
    return frames[st["exam_frame"]].format(join_list(items))


def shown_labs(f: dict[str, Any]) -> list[dict[str, Any]]:
    """The results a stem prints: all of them, or in compact cases the abnormal ones and one normal one."""
    if not f.get("style", {}).get("compact"):
        return f["labs"]
    return [x for x in f["labs"] if x["flag"] != "normal"] or f["labs"][:1]


def _labs_sentence(f: dict[str, Any], st: dict[str, Any]) -> str | None:
    if not f["labs"]:
        return None
    items = []
    for lab in shown_labs(f):
        lo, hi = lab["reference"]
        refs = st["lab_refs"] and not st["compact"]
        ref = f" ({'ref' if st['labs'] == 0 else 'normal'} {fmt_num(lo)}-{fmt_num(hi)})" if refs else ""
        items.append(lab_mention(lab, st) + ref)
    if st["labs"] == 1:
        return f"Laboratory studies show {join_list(items)}."
    if st["labs"] == 2:
        return f"Tests show {', '.join(items)}."
    return f"Results: {'; '.join(items)}."


def vignette(f: dict[str, Any], onset: str = "acute") -> str:
    """The case as a USMLE-style stem, worded by the case's style draws (``prose.sample_style``):
    opening, symptoms in varied order and words, pertinent negatives, history (with items that
    point nowhere), vitals and results in one of several layouts."""
    st = f.get("style")
    if st is None:
        return _plain_vignette(f)
    s = [_opening(f, st, onset), _symptom_sentence(f, st), *_negative_sentences(f, st, "symptom"),
         *_history_sentences(f, st), _vitals_sentence(f, st), _exam_sentence(f, st),
         *_negative_sentences(f, st, "exam"), _labs_sentence(f, st)]
    s += [imaging_mention(im, st) + "." for im in shown_imaging(f)]
    return " ".join(x for x in s if x)


def _plain_vignette(f: dict[str, Any]) -> str:
    """The one fixed layout, for facts without style draws."""
    child = f["age"] < 12
    who = f"A {age_text(f['age'])} {f['ethnicity']} {person_noun(f['age'], f['sex'])}"
    if f["pregnant"]:
        who += " who is pregnant"
    subject = "The parents report" if child else ("He reports" if f["sex"] == "male" else "She reports")
    pron = "His" if f["sex"] == "male" else "Her"
    s = [f"{who} presents with \"{f['chief_complaint']}\" for {_duration_text(f['duration'])}."]
    s.append(f"{subject} {join_list(f['symptoms'] + f['other_symptoms'])}.")
    if f["risk_factors"]:
        s.append(f"{pron} history includes {join_list(f['risk_factors'])}.")
    s.append(f"Vital signs: {vitals_text(f['vitals'])}.")
    s.append(f"Examination shows {join_list(f['exam'])}." if f["exam"] else "Examination is otherwise unremarkable.")
    if f["labs"]:
        s.append(f"Results: {'; '.join(lab_text(x) for x in f['labs'])}.")
    for im in f["imaging"]:
        s.append(f"{im['study']}: {im['finding']}.")
    return " ".join(s)


def first_clause(text: str, short: bool = True) -> str:
    """A discriminator as compact reasoning quotes it: its first clause.

    >>> first_clause("tearing pain to the back, unequal arm pressures, wide mediastinum")
    'tearing pain to the back'
    >>> first_clause("sudden negative symptoms (weakness, numbness), imaging")
    'sudden negative symptoms (weakness, numbness)'
    """
    if not short:
        return text
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and text.startswith((", ", "; "), i):
            return text[:i]
    return text


def abnormal_lab_findings(labs: list[dict[str, Any]]) -> list[str]:
    """Abnormal results as the reasoning cites them: "Troponin I 302 ng/L (high)"."""
    return [f"{x['name']} {fmt_num(x['value'])} {x['unit']} ({x['flag']})" for x in labs if x["flag"] != "normal"]


def cited_findings(f: dict[str, Any], prep: Prepared) -> tuple[list[str], list[str]]:
    """(evidence, support): the discriminating findings this case shows and up to three others of
    the condition, each in the words the stem uses, so the reasoning cites only what was stated."""
    cond, st = prep.cond, f.get("style")
    disc = {x.name for x in (*cond.presentation.symptoms, *cond.exam_findings) if x.discriminating}
    disc_labs = {lab.name for lab in cond.labs if lab.discriminating}
    disc_img = {(i.study, i.finding) for i in cond.imaging if i.discriminating}
    findings = [*f["symptoms"], *f["exam"]]
    if st and st["compact"]:
        findings = [x for x in findings if x in shown_symptoms(f) or x in shown_exam(f)]
    evidence = [shown(f, x) for x in findings if x in disc]
    abnormal = [x for x in f["labs"] if x["flag"] != "normal"]
    evidence += [f"{lab_mention(x, st)} ({x['flag']})" for x in abnormal if x["name"] in disc_labs]
    evidence += [imaging_mention(i, st) for i in shown_imaging(f) if (i["study"], i["finding"]) in disc_img]
    support = [shown(f, x) for x in findings if x not in disc][:2]
    support += [f"{lab_mention(x, st)} ({x['flag']})" for x in abnormal if x["name"] not in disc_labs][:1]
    return evidence, support


def _key_findings(f: dict[str, Any], prep: Prepared) -> str:
    if "style" not in f:
        abnormal_labs = abnormal_lab_findings(f["labs"])
        items = f["symptoms"][:2] + f["exam"][:1] + abnormal_labs[:2] + [f"{im['study']}: {im['finding']}" for im in f["imaging"][:1]]
    else:
        evidence, support = cited_findings(f, prep)
        most = 4 if f["style"]["compact"] else 6
        items = evidence[: most - 2] + support[: max(1, most - len(evidence[: most - 2]))]
        items += [f"no {x['text']}" for x in f["style"]["negatives"][:1]]
    head = f"{age_text(f['age'])} {person_noun(f['age'], f['sex'])} with \"{f['chief_complaint']}\" for {_duration_text(f['duration'])}"
    return head + "; " + "; ".join(items)


def key_evidence(f: dict[str, Any], prep: Prepared, limit: int | None = 2) -> list[str]:
    """What the conclusion cites: the discriminating evidence as shown, else the leading findings."""
    if "style" not in f:
        return (f["discriminating"] or f["symptoms"][:2])[:limit]
    evidence, support = cited_findings(f, prep)
    return (evidence or support)[:limit]


def reasoning_steps(f: dict[str, Any], prep: Prepared) -> list[str]:
    """Key findings -> differential with discriminating evidence -> conclusion -> red flags and next steps."""
    cond = prep.cond
    diffs = prep.differentials[:3]
    evidence = key_evidence(f, prep)
    short = f.get("style", {}).get("compact", False)
    return [
        f"Key findings: {_key_findings(f, prep)}.",
        "Differential: " + " ".join(f"{d['name']} is less likely ({first_clause(d['discriminator'], short)})." for d in diffs[:2])
        + (f" {diffs[2]['name']} is also considered." if len(diffs) > 2 else ""),
        f"Conclusion: {join_list(evidence)} {'points' if len(evidence) == 1 else 'point'} to {cond.name}.",
        f"Red flags: {join_list(cond.red_flags[:2])}. Next step: {lc_first(cond.management.next_best_step)}.",
    ]


def reference_answer(cond: Condition) -> str:
    """Reference answer of the open question: diagnosis, workup and first-line management."""
    return (f"{cond.name}. Best initial test: {cond.diagnostics.best_initial_test}. Confirmatory test: "
            f"{cond.diagnostics.confirmatory_test}. First-line management: {'; '.join(cond.management.first_line[:3])}.")


def case_dict(f: dict[str, Any], prep: Prepared, meta: dict[str, Any], steps: list[str], text: str) -> dict[str, Any]:
    """The case in the seed guide's schema (cases.jsonl)."""
    cond = prep.cond
    return {
        **meta,
        "patient_profile": {"age": f["age"], "age_text": age_text(f["age"]), "sex": f["sex"], "ethnicity": f["ethnicity"],
                            "pregnant": f["pregnant"], "risk_factors": f["risk_factors"]},
        "chief_complaint": f["chief_complaint"],
        "atypical_presentation": f["atypical"],
        "symptom_history": {"onset": cond.presentation.onset, "duration": f["duration"], "course": cond.presentation.course,
                            "symptoms": f["symptoms"], "other_symptoms": f["other_symptoms"]},
        "physical_exam": {"vital_signs": f["vitals"], "findings": f["exam"]},
        "labs": f["labs"],
        "imaging": f["imaging"],
        "vignette": text,
        "key_evidence": key_evidence(f, prep, limit=None),
        "pertinent_negatives": [x["text"] for x in f.get("style", {}).get("negatives", [])],
        "incidental_history": list(f.get("style", {}).get("history", [])),
        "reasoning_steps": steps,
        "differential_diagnoses": prep.differentials,
        "treatment_plan": {"medications": list(cond.management.first_line), "next_best_step": cond.management.next_best_step,
                           "contraindications": list(cond.management.contraindications)},
        "final_diagnosis": cond.name,
        "red_flags": list(cond.red_flags),
        "patient_explanation": cond.patient_explanation.strip(),
        "sources": list(cond.sources),
    }
