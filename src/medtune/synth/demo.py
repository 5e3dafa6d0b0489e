"""A compact synthetic training set for CPU demos (quickstart, the slow end-to-end test).

Full synthetic vignettes run 450-850 SmolLM2 tokens (vitals, labs, imaging). A 2-core CPU
trains ~100-200 tokens/s, so minutes of training need samples of ~100-150 tokens.

``focused_record`` (the demo set) states a case's key findings -- complaint, two leading
symptoms, one exam finding and one abnormal result -- in one of three phrasings, and its
reasoning cites exactly those ("Key findings: ... Conclusion: these findings point to X").
Items with choices then walk them in the question's order up to the answer
(``data.render.options_walk``): "Options: A. X - no; B. Y - yes." when lettered, "Options: x - no;
y - yes." when written inline, so the final letter is the one just written and option names are
never listed as findings. ``demo_records`` varies the set by seeded draws: 60% of typical cases are history and
examination only (so the model must learn what symptoms point to, not only which lab does;
atypical cases keep their discriminating result), half of the multiple-choice items write their
choices inline ("pneumothorax, myocardial infarction, pneumonia or GERD?"), and some questions
follow the case in the same paragraph, the way people type them. ``compact_record`` (the first
vignette sentences only) is kept for the training throughput bench.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

from ..config.sections.synth import ReasoningOrder
from ..data.records import Answer, Record
from ..data.render import options_walk
from ..utils.io import atomic_write_jsonl
from .sampling import fmt_num
from .tasks import Q_DIAGNOSIS, Q_MANAGEMENT, Q_MCQ, Q_OPEN
from .writeup import abnormal_lab_findings, age_text, join_list, lc_first, person_noun

_QUESTIONS = {"diagnosis": Q_DIAGNOSIS, "mcq": Q_MCQ, "management": Q_MANAGEMENT, "open": Q_OPEN}

# The conclusion line of every demo answer; bench/vignette_cloze.py scores option texts in this slot.
CONCLUSION_CUE = "Conclusion: these findings point to"
# findings_first: "Key findings: ...", the conclusion, the options walk (the reasoning a reader expects);
# conclusion_first: the conclusion and the walk, then the findings that support it. On long hand-written
# vignettes a findings-first 135M model copies the whole case into "Key findings" and 14 of 88 answers never
# reach a conclusion (clinic-cpu's fourth run); conclusion-first puts the diagnosis and its letter before the copying.
REASONING_ORDERS = get_args(ReasoningOrder)
_FIRST_PERSON = re.compile(r"\b(I|I'm|my|me)\b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def compact_record(record: Record, sentences: int = 2, findings: int = 3) -> Record:
    """Short form of one synthetic case record (see the module docstring).

    >>> from medtune.data.records import Answer
    >>> r = Record.create(source="s", task="diagnosis", answer=Answer(text="Croup"),
    ...     question="A 3-year-old boy presents with cough. He reports stridor. Vital signs: normal.\\n\\nWhat is the most likely diagnosis?",
    ...     reasoning="Key findings: 3-year-old boy with cough; stridor; normal vitals.\\nConclusion: croup.",
    ...     response="The most likely diagnosis is Croup. Next step: dexamethasone.")
    >>> c = compact_record(r)
    >>> print(c.question)
    A 3-year-old boy presents with cough. He reports stridor.
    <BLANKLINE>
    What is the most likely diagnosis?
    >>> print(c.reasoning)
    Key findings: 3-year-old boy with cough; stridor; normal vitals.
    Conclusion: these findings point to Croup.
    >>> c.response
    'The most likely diagnosis is Croup.'
    """
    paragraphs = record.question.strip().split("\n\n")
    stem = " ".join(_SENTENCE_END.split(paragraphs[0])[:sentences])
    question = stem if len(paragraphs) == 1 else f"{stem}\n\n{paragraphs[-1]}"
    answer = record.answer_text or ""
    reasoning = None
    first = (record.reasoning or "").splitlines()[0] if record.reasoning else ""
    if first.startswith("Key findings:") and answer:
        items = [x.strip().rstrip(".") for x in first[len("Key findings:"):].split(";") if x.strip()]
        reasoning = f"Key findings: {'; '.join(items[:findings])}.\n{CONCLUSION_CUE} {answer}."
    response = _SENTENCE_END.split(record.response.strip())[0] if record.response else None
    return record.model_copy(update={"question": question, "reasoning": reasoning, "response": response,
                                     "context": None, "metadata": {**record.metadata, "compacted": True}})


Findings = tuple[list[str], list[str], list[str]]  # symptoms, exam findings, results (labs, studies)


def _pick(case: dict, results: bool = True) -> Findings:
    """The case's leading symptoms, one exam finding and (``results``) one abnormal lab, else a study."""
    symptoms = case["symptom_history"]["symptoms"][:2]
    exam = case["physical_exam"]["findings"][:1]
    if not results:
        return symptoms, exam, []
    labs = abnormal_lab_findings(case["labs"])
    return symptoms, exam, labs[:1] or [f"{im['study']}: {im['finding']}" for im in case["imaging"][:1]]


def case_summary(case: dict, style: int, findings: Findings | None = None) -> str:
    """The case in one of three phrasings (0: history then exam, 1: one sentence, 2: a terse note).

    >>> case = {"patient_profile": {"age": 60.0, "sex": "male"}, "chief_complaint": "crushing chest pain",
    ...         "symptom_history": {"symptoms": ["pain radiating to the left arm"], "duration": {"value": 2, "unit": "hours"}},
    ...         "physical_exam": {"findings": ["diaphoresis"]}, "labs": [], "imaging": []}
    >>> for style in range(3):
    ...     print(case_summary(case, style))
    A 60-year-old man presents with crushing chest pain for 2 hours. He reports pain radiating to the left arm. Examination shows diaphoresis.
    A 60-year-old man presents with crushing chest pain, pain radiating to the left arm and diaphoresis.
    60-year-old man, crushing chest pain for 2 hours; pain radiating to the left arm; diaphoresis.
    """
    p = case["patient_profile"]
    who = f"{age_text(p['age'])} {person_noun(p['age'], p['sex'])}"
    complaint, (symptoms, exam, results) = case["chief_complaint"], findings or _pick(case)
    complaint = f'"{complaint}"' if _FIRST_PERSON.search(complaint) else complaint
    d = case["symptom_history"]["duration"]
    dur = f"{fmt_num(d['value'])} {d['unit'][:-1] if d['value'] == 1 else d['unit']}"
    if style == 1:
        lead = ", ".join([complaint, *symptoms, *exam][:-1])
        last = [complaint, *symptoms, *exam][-1]
        text = f"A {who} presents with {lead + ' and ' + last if lead else last}."
        return text + (f" {results[0][:1].upper()}{results[0][1:]}." if results else "")
    if style == 2:
        return f"{who}, {complaint} for {dur}; " + "; ".join(symptoms + exam + results) + "."
    subject = "The parents report" if p["age"] < 12 else ("He reports" if p["sex"] == "male" else "She reports")
    text = [f"A {who} presents with {complaint} for {dur}."]
    text += [f"{subject} {join_list(symptoms)}."] if symptoms else []
    text += [f"Examination shows {join_list(exam)}."] if exam else []
    text += [f"Results: {'; '.join(results)}."] if results else []
    return " ".join(text)


_INLINE_ASK = "Which condition is most likely:"
# A question asked in the case's own paragraph (``one_paragraph``): the task's standard question or inline choices.
_ASKED_INLINE = re.compile(r"\s+(?:" + "|".join(re.escape(q) for q in _QUESTIONS.values())
                           + rf"|{re.escape(_INLINE_ASK)}[^\n]*)$")


def _inline_question(options: dict[str, str]) -> str:
    """The options written into the question; semicolons between them where a name has a comma of its own.

    >>> _inline_question({"A": "Schizophrenia", "B": "Bipolar I disorder, current episode manic", "C": "Delirium"})
    'Which condition is most likely: schizophrenia; bipolar I disorder, current episode manic; or delirium?'
    """
    names = [lc_first(v) for v in options.values()]
    if any("," in n for n in names):
        return f"{_INLINE_ASK} {'; '.join(names[:-1])}; or {names[-1]}?"
    return f"{_INLINE_ASK} {', '.join(names[:-1])} or {names[-1]}?"


def vignette_of(question: str) -> str:
    """The case a synthetic question (demo or engine) describes, without its question line: two items with the
    same vignette are the same patient, whatever they ask.

    >>> vignette_of("A 60-year-old man presents with chest pain.\\n\\nWhich of the following is the most likely diagnosis?")
    'A 60-year-old man presents with chest pain.'
    >>> vignette_of("A 60-year-old man presents with chest pain. Which condition is most likely: angina or GERD?")
    'A 60-year-old man presents with chest pain.'
    """
    head, sep, _ = question.strip().rpartition("\n\n")
    return head.strip() if sep else _ASKED_INLINE.sub("", question.strip())


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def case_key(question: str) -> str:
    """What makes two synthetic questions the same patient: the vignette (:func:`vignette_of`) with its numbers
    masked, so cases that differ only in an age, a vital sign or a lab value count as one (a held-out item must
    not be a training case with other numbers).

    >>> a = case_key("A 60-year-old man, HR 112, with chest pain.\\n\\nMost likely diagnosis?")
    >>> a == case_key("A 58-year-old man, HR 97, with chest pain.\\n\\nWhich diagnosis?")
    True
    """
    from ..data.records import content_id

    return content_id(_NUMBER.sub("#", vignette_of(question)))


def focused_record(record: Record, case: dict, style: int = 0, inline: bool = False, findings: Findings | None = None,
                   one_paragraph: bool = False, conclusion_first: bool = False) -> Record:
    """A short form of ``record`` built from its ``case``: the key findings in prose, reasoning that cites them.

    ``inline`` writes a multiple-choice item's options into the question ("... pneumothorax,
    myocardial infarction or pneumonia?") and expects the condition's name as the answer;
    ``findings`` (default: the leading ones, see ``_pick``) are the ones stated;
    ``one_paragraph`` puts the question right after the case, as people type it;
    ``conclusion_first`` writes the conclusion and the options walk before the key findings
    (``REASONING_ORDERS``).
    """
    findings = findings or _pick(case)
    symptoms, exam, results_ = findings
    answer = record.answer_text or ""
    listed = "; ".join([case["chief_complaint"], *symptoms, *exam, *results_])
    # The task's standard question, not the record's: engine records vary their question lines
    # (prose.py), the demo set keeps one wording per task.
    ask = _QUESTIONS.get(record.metadata.get("task_type", record.task)) or record.question.strip().split("\n\n")[-1]
    lines = [f"{CONCLUSION_CUE} {answer}."]
    if record.options and record.answer.letter:  # walked as the question shows them: lettered, or inline in words
        shown = {k: lc_first(v) for k, v in record.options.items()} if inline else record.options
        lines.append(options_walk(shown, record.answer.letter, lettered=not inline))
    cited = f"Key findings: {listed}."
    reasoning = "\n".join([*lines, cited] if conclusion_first else [cited, *lines])
    update: dict = {"reasoning": reasoning,
                    "context": None,
                    "metadata": {**record.metadata, "compacted": "focused", "atypical": case["atypical_presentation"]}}
    stem, sep = case_summary(case, style, findings), " " if one_paragraph else "\n\n"
    if inline and record.options:
        update.update(question=f"{stem}{sep}{_inline_question(record.options)}", options=None, task="diagnosis",
                      answer=Answer(text=answer), response=f"The most likely diagnosis is {answer}.")
    else:
        update.update(question=f"{stem}{sep}{ask}", response=None if record.options else f"The most likely diagnosis is {answer}.")
    return record.model_copy(update=update)


def direct_answer(record: Record) -> Record:
    """The lettered item answered without reasoning: what the loglik protocol's chat style asks a model.

    >>> r = Record(id="x-mcq", source="s", task="mcq", question="Q?", options={"A": "a", "B": "b"},
    ...            answer=Answer(letter="B", text="b"), reasoning="Key findings: y.")
    >>> d = direct_answer(r); (d.id, d.reasoning, d.metadata["direct"])
    ('x-mcq-direct', None, True)
    """
    return record.model_copy(update={"id": f"{record.id}-direct", "reasoning": None,
                                     "metadata": {**record.metadata, "direct": True}})


def demo_records(n_cases: int, seed: int, specialties: list[str] | None = None,
                 tasks: tuple[str, ...] = ("diagnosis", "mcq"), inline_share: float = 0.5,
                 history_only_share: float = 0.6, one_paragraph_share: float = 0.3,
                 direct_share: float = 0.0, reasoning_order: ReasoningOrder = "findings_first") -> Iterator[Record]:
    """Focused records of ``n_cases`` synthetic cases; phrasing, inline options, history-only cases
    (typical presentations only: an atypical one needs its lab) and one-paragraph questions vary by a seeded draw.
    ``direct_share`` of the lettered items are followed by their direct-answer twin (``direct_answer``), drawn
    from a generator of their own, so the other records are the same whatever the share. ``reasoning_order``
    is one of ``REASONING_ORDERS``; it changes the reasoning's line order and nothing else."""
    import random

    from ..synth.engine import iter_cases_and_records

    if reasoning_order not in REASONING_ORDERS:
        raise ValueError(f"reasoning_order {reasoning_order!r}: use one of {', '.join(REASONING_ORDERS)}")
    rng, direct_rng = random.Random(f"medtune-demo:{seed}"), random.Random(f"medtune-demo-direct:{seed}")
    for case, records in iter_cases_and_records(n_cases, seed, specialties=specialties or None, tasks=list(tasks)):
        style = rng.randrange(3)
        results = case["atypical_presentation"] or rng.random() >= history_only_share
        findings = _pick(case, results)
        for r in records:
            inline = r.task == "mcq" and rng.random() < inline_share
            focused = focused_record(r, case, style, inline=inline, findings=findings,
                                     one_paragraph=(inline or r.options is None) and rng.random() < one_paragraph_share,
                                     conclusion_first=reasoning_order == "conclusion_first")
            yield focused
            if focused.options and direct_share and direct_rng.random() < direct_share:
                yield direct_answer(focused)


def write_demo_training_set(path: str | Path, n_cases: int = 500, seed: int = 0,
                            specialties: list[str] | None = None, tasks: tuple[str, ...] = ("diagnosis", "mcq"),
                            **options: Any) -> int:
    """Synthesize ``n_cases`` cases (one record per task each), compact them, write JSONL; returns the count.

    500 cases x (diagnosis, mcq) = 1,000 focused records, ~100-150 SmolLM2 tokens each; half of
    the multiple-choice items have their choices written inline.
    """
    records = demo_records(n_cases, seed, specialties, tasks, **options)
    return atomic_write_jsonl(path, (r.model_dump(mode="json") for r in records))
