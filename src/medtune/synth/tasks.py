"""The task types, written from one case directly as medtune Records.

* ``diagnosis``  -- open "most likely diagnosis?" with structured reasoning; answer = condition name
* ``mcq``        -- USMLE-style diagnosis MCQ (5 options when the KB offers 4 distractors, else 4);
                    distractors from the condition's differentials, then same-specialty conditions;
                    the reasoning weighs each offered option against the findings
* ``management`` -- next-best-step MCQ: the KB's next_best_step against 3 of its wrong_next_steps
* ``open``       -- diagnosis + workup + first-line management, reference answer in ``answer.text``
* ``treatment``  -- "most appropriate treatment": the KB's ``management.treatment`` against the
                    treatments of 3 other conditions (differentials first), none sharing a drug or
                    procedure word with this condition's own management (synth.pools)
* ``mechanism``  -- "underlying mechanism": the KB's ``mechanism`` against the mechanisms of 3 other
                    conditions (differentials first)

Option order and the correct letter's position were drawn with the case (sampling.py for
mcq/management, prose.py for treatment/mechanism), so letters are uniform across positions and a
bias-probe copy keeps the same layout. Reasoning cites findings in the words the stem uses; the
final answer ("The answer is (C) ...") states letter and option text (data.render).
"""

from __future__ import annotations

from typing import Any

from ..data.records import Answer, Record
from ..data.render import options_walk
from .prose import question_line
from .sampling import Prepared
from .writeup import first_clause, join_list, lc_first, reference_answer

TASKS = ("diagnosis", "mcq", "management", "open", "treatment", "mechanism")
SOURCE = "medtune-synth"
LETTERS = "ABCDE"
Q_DIAGNOSIS = "What is the most likely diagnosis?"
Q_MCQ = "Which of the following is the most likely diagnosis?"
Q_MANAGEMENT = "Which of the following is the most appropriate next step in management?"
Q_OPEN = "What is the most likely diagnosis, and how should this patient be evaluated and treated initially?"
Q_TREATMENT = "Which of the following is the most appropriate treatment?"
Q_MECHANISM = "Which of the following best describes the underlying mechanism of this patient's condition?"


def _layout(correct: str, distractors: list[str], position: int) -> tuple[dict[str, str], str]:
    """Options dict with the correct answer at ``position``.

    >>> _layout("right", ["w1", "w2", "w3"], 2)
    ({'A': 'w1', 'B': 'w2', 'C': 'right', 'D': 'w3'}, 'C')
    """
    texts = list(distractors)
    position = min(position, len(texts))
    texts.insert(position, correct)
    return dict(zip(LETTERS, texts, strict=False)), LETTERS[position]


def _management_reasoning(f: dict[str, Any], prep: Prepared, steps: list[str]) -> str:
    m = prep.cond.management
    lines = [steps[0], steps[2],
             f"Management: first-line care is {lc_first(m.first_line[0])}, so the next step is "
             f"{lc_first(m.next_best_step)}.",
             f"Not appropriate now: {join_list([lc_first(x) for x in f['mgmt_distractors']])}."]
    if m.contraindications:
        lines.append(f"Avoid: {lc_first(m.contraindications[0])}.")
    return "\n".join(lines)


def _mcq_reasoning(prep: Prepared, steps: list[str], options: dict[str, str], letter: str, short: bool = False) -> str:
    """Key findings, the conclusion, then the options walked up to the answer (``options_walk``);
    an option passed over says why it is less likely where the knowledge base tells."""
    reasons = {name: first_clause(r, short) for name, r in prep.option_reasons.items()}
    return "\n".join([steps[0], steps[2], options_walk(options, letter, reasons)])


def _owned_options_reasoning(prep: Prepared, steps: list[str], label: str, options: dict[str, str], letter: str,
                             owners: dict[str, str]) -> str:
    """Reasoning of the treatment and mechanism questions: diagnosis first, the answer's statement,
    then the options walked up to it, each passed over naming the condition it belongs to."""
    reasons = {text: f"fits {owner}" for text, owner in owners.items()}
    return "\n".join([steps[0], steps[2], f"{label} of {prep.cond.name}: {lc_first(options[letter])}.",
                      options_walk(options, letter, reasons)])


def _stem_question(stem: str, style: dict[str, Any] | None, task: str, default: str) -> str:
    return f"{stem}\n\n{question_line(style, task, default)}"


def case_records(f: dict[str, Any], prep: Prepared, meta: dict[str, Any], steps: list[str], stem: str,
                 tasks: tuple[str, ...] | list[str], id_suffix: str = "") -> list[Record]:
    """One Record per requested task for one case; ids are ``<case_id>[-variant]-<task>``."""
    out: list[Record] = []
    for task in tasks:
        record = _record(task, f, prep, {**meta, "task_type": task}, steps, stem,
                         f"{meta['case_id']}{id_suffix}-{task}")
        if record is not None:
            out.append(record)
    return out


def _record(task: str, f: dict[str, Any], prep: Prepared, md: dict[str, Any], steps: list[str], stem: str,
            rid: str) -> Record | None:
    cond, style = prep.cond, f.get("style")
    if task == "diagnosis":
        return Record(id=rid, source=SOURCE, task="diagnosis", question=f"{stem}\n\n{Q_DIAGNOSIS}",
                      answer=Answer(text=cond.name), reasoning="\n".join(steps), metadata=md,
                      response=f"The most likely diagnosis is {cond.name}. Next step: {cond.management.next_best_step}.")
    if task == "mcq":
        options, letter = _layout(cond.name, f["mcq_distractors"], f["mcq_position"])
        reasoning = _mcq_reasoning(prep, steps, options, letter, style["compact"]) if style else "\n".join(steps)
        return Record(id=rid, source=SOURCE, task="mcq", question=_stem_question(stem, style, "mcq", Q_MCQ),
                      options=options, answer=Answer(letter=letter, text=cond.name), reasoning=reasoning, metadata=md)
    if task == "management":
        options, letter = _layout(cond.management.answer_option, f["mgmt_distractors"], f["mgmt_position"])
        return Record(id=rid, source=SOURCE, task="management", question=f"{stem}\n\n{Q_MANAGEMENT}",
                      options=options, answer=Answer(letter=letter, text=cond.management.answer_option),
                      reasoning=_management_reasoning(f, prep, steps), metadata=md)
    if task == "open":
        ref = reference_answer(cond)
        return Record(id=rid, source=SOURCE, task="open", question=f"{stem}\n\n{Q_OPEN}",
                      answer=Answer(text=ref), reasoning="\n".join(steps), response=ref, metadata=md)
    if task in ("treatment", "mechanism"):
        return _owned_record(task, f, prep, md, steps, stem, rid)
    raise ValueError(f"unknown task {task!r}: use {', '.join(TASKS)}")


def _owned_record(task: str, f: dict[str, Any], prep: Prepared, md: dict[str, Any], steps: list[str], stem: str,
                  rid: str) -> Record | None:
    """Treatment or mechanism MCQ; None for a condition (or facts without style draws) that cannot ask it."""
    cond, style = prep.cond, f.get("style")
    answer = cond.management.treatment if task == "treatment" else cond.mechanism
    draw = (style or {}).get(task)
    if not answer or not draw or len(draw["distractors"]) < 3:
        return None
    options, letter = _layout(answer, [t for t, _ in draw["distractors"]], draw["position"])
    label = "Treatment" if task == "treatment" else "Mechanism"
    default = Q_TREATMENT if task == "treatment" else Q_MECHANISM
    return Record(id=rid, source=SOURCE, task="management" if task == "treatment" else "mcq",
                  question=_stem_question(stem, style, task, default), options=options,
                  answer=Answer(letter=letter, text=answer), metadata=md,
                  reasoning=_owned_options_reasoning(prep, steps, label, options, letter, dict(draw["distractors"])))
