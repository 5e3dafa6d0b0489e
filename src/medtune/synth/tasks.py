"""The four task types, written from one case directly as medtune Records.

* ``diagnosis``  -- open "most likely diagnosis?" with structured reasoning; answer = condition name
* ``mcq``        -- USMLE-style diagnosis MCQ (5 options when the KB offers 4 distractors, else 4);
                    distractors from the condition's differentials, then same-specialty conditions
* ``management`` -- next-best-step MCQ: the KB's next_best_step against 3 of its wrong_next_steps
* ``open``       -- diagnosis + workup + first-line management, reference answer in ``answer.text``

Option order and the correct letter's position were drawn with the case (sampling.py), so
the letters are uniform across positions and a bias-probe copy keeps the same layout.
"""

from __future__ import annotations

from typing import Any

from ..data.records import Answer, Record
from .sampling import Prepared
from .writeup import join_list, lc_first, reference_answer

TASKS = ("diagnosis", "mcq", "management", "open")
SOURCE = "medtune-synth"
LETTERS = "ABCDE"
Q_DIAGNOSIS = "What is the most likely diagnosis?"
Q_MCQ = "Which of the following is the most likely diagnosis?"
Q_MANAGEMENT = "Which of the following is the most appropriate next step in management?"
Q_OPEN = "What is the most likely diagnosis, and how should this patient be evaluated and treated initially?"


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


def case_records(f: dict[str, Any], prep: Prepared, meta: dict[str, Any], steps: list[str], stem: str,
                 tasks: tuple[str, ...] | list[str], id_suffix: str = "") -> list[Record]:
    """One Record per requested task for one case; ids are ``<case_id>[-variant]-<task>``."""
    cond = prep.cond
    reasoning = "\n".join(steps)
    out: list[Record] = []
    for task in tasks:
        rid = f"{meta['case_id']}{id_suffix}-{task}"
        md = {**meta, "task_type": task}
        if task == "diagnosis":
            out.append(Record(id=rid, source=SOURCE, task="diagnosis", question=f"{stem}\n\n{Q_DIAGNOSIS}",
                              answer=Answer(text=cond.name), reasoning=reasoning, metadata=md,
                              response=f"The most likely diagnosis is {cond.name}. Next step: {cond.management.next_best_step}."))
        elif task == "mcq":
            options, letter = _layout(cond.name, f["mcq_distractors"], f["mcq_position"])
            out.append(Record(id=rid, source=SOURCE, task="mcq", question=f"{stem}\n\n{Q_MCQ}", options=options,
                              answer=Answer(letter=letter, text=cond.name), reasoning=reasoning, metadata=md))
        elif task == "management":
            options, letter = _layout(cond.management.next_best_step, f["mgmt_distractors"], f["mgmt_position"])
            out.append(Record(id=rid, source=SOURCE, task="management", question=f"{stem}\n\n{Q_MANAGEMENT}",
                              options=options, answer=Answer(letter=letter, text=cond.management.next_best_step),
                              reasoning=_management_reasoning(f, prep, steps), metadata=md))
        elif task == "open":
            ref = reference_answer(cond)
            out.append(Record(id=rid, source=SOURCE, task="open", question=f"{stem}\n\n{Q_OPEN}",
                              answer=Answer(text=ref), reasoning=reasoning, response=ref, metadata=md))
        else:
            raise ValueError(f"unknown task {task!r}: use {', '.join(TASKS)}")
    return out
