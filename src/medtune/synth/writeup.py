"""Write sampled facts up as text: vignette, structured reasoning, reference answer, case dict.

Everything here is deterministic on (facts, condition): no random draws. Texts are kept
compact on purpose (a vignette of a few sentences, reasoning of ~80-150 words) because
CPU training runs at ~110 tokens/s.
"""

from __future__ import annotations

from typing import Any

from .kb_schema import Condition
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


def vignette(f: dict[str, Any]) -> str:
    """The case as a short USMLE-style stem: who, complaint, history, vitals, exam, results."""
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


def abnormal_lab_findings(labs: list[dict[str, Any]]) -> list[str]:
    """Abnormal results as the reasoning cites them: "Troponin I 302 ng/L (high)"."""
    return [f"{x['name']} {fmt_num(x['value'])} {x['unit']} ({x['flag']})" for x in labs if x["flag"] != "normal"]


def _key_findings(f: dict[str, Any]) -> str:
    abnormal_labs = abnormal_lab_findings(f["labs"])
    items = f["symptoms"][:2] + f["exam"][:1] + abnormal_labs[:2] + [f"{im['study']}: {im['finding']}" for im in f["imaging"][:1]]
    head = f"{age_text(f['age'])} {person_noun(f['age'], f['sex'])} with \"{f['chief_complaint']}\" for {_duration_text(f['duration'])}"
    return head + "; " + "; ".join(items)


def reasoning_steps(f: dict[str, Any], prep: Prepared) -> list[str]:
    """Key findings -> differential with discriminating evidence -> conclusion -> red flags and next steps."""
    cond = prep.cond
    diffs = prep.differentials[:3]
    evidence = (f["discriminating"] or f["symptoms"][:2])[:2]
    return [
        f"Key findings: {_key_findings(f)}.",
        "Differential: " + " ".join(f"{d['name']} is less likely ({d['discriminator']})." for d in diffs[:2])
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
        "key_evidence": f["discriminating"],
        "reasoning_steps": steps,
        "differential_diagnoses": prep.differentials,
        "treatment_plan": {"medications": list(cond.management.first_line), "next_best_step": cond.management.next_best_step,
                           "contraindications": list(cond.management.contraindications)},
        "final_diagnosis": cond.name,
        "red_flags": list(cond.red_flags),
        "patient_explanation": cond.patient_explanation.strip(),
        "sources": list(cond.sources),
    }
