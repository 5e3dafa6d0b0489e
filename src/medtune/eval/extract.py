"""Strict answer extraction from a model's generated text (the ``cot`` protocol).

Only the final-answer part is read: the text after ``</think>`` or ``## Final Response``
(``medtune.data.render.split_reasoning``), so letters the model weighs while
reasoning never count; reasoning that opens and never closes (cut off by the token budget)
has no final part and is unparseable. ``plain`` output has no such marker: its paragraphs are
read from the last, answer statements and bare letters (rules 1-2) in any paragraph before
mentions and option texts (rules 3-4), so "The answer is (C) ...\n\nPericarditis would show a
rub." is C. Within a part the rules, tried in order, are:

1. **Answer statements** -- "the answer is (C)", "Answer: C", "final answer: **C**",
   "\\boxed{C}", "correct option is C", "I choose C". The letter must be an
   option letter and stand alone ("Answer: Acute MI" is not "A"; "B12" is not "B");
   lowercase only when parenthesised ("(c)") or ending its line ("Answer: c", "the answer
   is b."), never when a word follows ("the answer is a rare condition"). A cue followed by
   an option's text ("The answer is aortic dissection", "Answer: yes") names that option.
2. **A bare answer** -- the final part is just "C", "(C)", "C." or "**C**"; or starts
   with "C." / "C)" followed by that option's own text ("C. Aortic dissection");
   or ends with a short concluding sentence naming a letter ("... So B.", "Thus, (D).");
   or, for short option words (yes / no / maybe), is that word or starts with it followed
   by punctuation ("Yes.", "No, the trial was underpowered"). "A. 45-year-old man..."
   starting a sentence is therefore not an answer, nor is "No evidence either way".
3. **"option C" / "choice C"** mentions not preceded by a negation ("not option A").
4. **The option's text** -- exactly one option's full text appears (longest match wins
   when one option's text contains another's). Texts of 5 characters or fewer
   ("yes", "no") count only in rule 1, since "no" appears in ordinary prose.

**Two answers.** If a rule finds more than one distinct letter, the answer is
*unparseable* ("conflicting"): a hedge such as "Answer: A or C" must not be scored
as a hit, and we do not guess which of two stated answers the model meant. Rules
are not mixed: the first rule that finds anything decides (except that a concluding
"So B." after "the answer is A" is a second answer). Unparseable answers count
as wrong and are reported separately.

>>> opts = {"A": "Aortic dissection", "B": "Pericarditis", "C": "Pulmonary embolism", "D": "Pneumothorax"}
>>> extract_answer("## Thinking\\nA is unlikely. B fits.\\n## Final Response\\nThe answer is (B).", opts).letter
'B'
>>> extract_answer("Answer: A or C", opts).status
'conflicting'
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from ..data.render import has_reasoning_markers, split_reasoning

_CUE = (
    r"(?:(?:final|correct|best|right)\s+)?(?:answer|option|choice)\s*(?:(?:is|would\s+be)(?:\s*:)?|=|:)"
    r"|(?:i\s+(?:would\s+)?(?:choose|pick|select|go\s+with))"
)
_LETTER_AFTER_CUE = re.compile(
    rf"(?i:{_CUE})\s*(?:option\s+|choice\s+)?(?:\(\s*([A-Za-z])\s*\)|([A-Z])(?![\w'-])|([a-z])(?=[.!]?[ \t]*(?:\n|$)))"
)
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*([A-Z])\s*\}?\s*\}")
_OPTION_IS_CORRECT = re.compile(r"(?i:option|choice)\s*\(?([A-Z])\)?\s+(?i:is\s+(?:the\s+)?(?:correct|right|best))")
_OPTION_MENTION = re.compile(r"(?i:option|choice)\s*\(?([A-Z])\)?(?![\w'-])")
_BARE = re.compile(r"^\(?([A-Z])\)?[.:)]?$")
_LEADING = re.compile(r"^\(?([A-Z])[.):]\s+(.+)$", re.S)
_NEGATION = re.compile(r"(?i:\bnot|n't|\bexclude|\bexcluding|\brule\s+out|\bruled\s+out|\brather\s+than|\bnor)\s*$")
_HEDGE = re.compile(r"^\)?\s*(?:or|and|/|,|vs\.?)\s*(?:option\s+)?\(?([A-Z])\)?(?![\w'-])")
_CUE_ONLY = re.compile(rf"(?i:{_CUE})\s*")
_RESTATED = re.compile(r"[ \t]*[)\]:,\-\u2013\u2014]*[ \t]*")  # what may stand between a letter and its option text
_CONCLUDING = re.compile(
    r"(?:^|[.!?;]\s+|\n)(?i:so|thus|therefore|hence)[,:]?\s+\(?([A-Z])\)?"
    r"(?:\s*(?:or|and|/|,)\s*\(?([A-Z])\)?)?[.!]?\s*$"
)
_LEADING_WORD = re.compile(r"^([A-Za-z]{2,5})(?:\s*[.,;:!]|$)")


@dataclass
class Extraction:
    """What the extractor found: the letter, how (``method``), and ``status``.

    status is ``ok``, ``unparseable`` (nothing found) or ``conflicting`` (two answers).
    """

    letter: str | None
    status: str
    method: str | None = None

    @property
    def parsed(self) -> bool:
        return self.letter is not None

    def as_dict(self) -> dict:
        return asdict(self)


def _clean(text: str) -> str:
    """Drop markdown emphasis/code marks and collapse whitespace; keeps letters and punctuation."""
    text = re.sub(r"[*_`#]+", "", text)
    return re.sub(r"[ \t]+", " ", text).strip()


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def _decide(letters: list[str], method: str) -> Extraction | None:
    distinct = list(dict.fromkeys(letters))
    if not distinct:
        return None
    if len(distinct) > 1:
        return Extraction(None, "conflicting", method)
    return Extraction(distinct[0], "ok", method)


def _negated(text: str, start: int) -> bool:
    return bool(_NEGATION.search(text[max(0, start - 20) : start]))


def _text_after_cue(final: str, options: dict[str, str]) -> list[str]:
    """Rule 1b: a cue directly followed by an option's text ("The answer is yes")."""
    found = []
    for m in _CUE_ONLY.finditer(final):  # every cue, not only the first: two answers are two answers
        after = _norm(final[m.end() :])
        hits = [k for k, v in options.items() if _norm(v) and re.match(rf"{re.escape(_norm(v))}\b", after)]
        if hits:  # the longest option text that matches is the one meant ("pulmonary hypertension" over "pulmonary")
            found.append(max(hits, key=lambda k: len(_norm(options[k]))))
    return found


def _option_named_by(text: str, options: dict[str, str]) -> str | None:
    """The option whose full text ``text`` starts with (the longest; texts of 5 characters or fewer never count).

    >>> _option_named_by(" Aortic dissection.", {"A": "Aortic dissection", "D": "Acute pericarditis"})
    'A'
    """
    after = _norm(text)
    hits = [k for k, v in options.items() if len(_norm(v)) > 5 and re.match(rf"{re.escape(_norm(v))}\b", after)]
    return max(hits, key=lambda k: len(_norm(options[k]))) if hits else None


def _restated_option(rest: str, options: dict[str, str]) -> str | None:
    """The option a letter's own restatement names: "(D) Aortic dissection", "C - pulmonary embolism", or a
    sentence that is only an option's text ("C. Aortic dissection."); never the start of a new sentence
    ("C. Pneumothorax is excluded by the x-ray." discusses another option, it does not answer it).

    >>> _restated_option(". Tension pneumothorax is excluded.", {"C": "Pulmonary embolism", "D": "Tension pneumothorax"})
    >>> _restated_option(". Tension pneumothorax.", {"C": "Pulmonary embolism", "D": "Tension pneumothorax"})
    'D'
    """
    tail = rest[_RESTATED.match(rest).end() :]
    if tail.startswith("\n"):
        return None
    if tail.startswith("."):
        sentence = _norm(re.split(r"[.!?;\n]", tail[1:].lstrip(), maxsplit=1)[0])
        hits = [k for k, v in options.items() if len(_norm(v)) > 5 and _norm(v) == sentence]
        return hits[0] if hits else None
    return _option_named_by(tail, options)


def _rule_statements(final: str, options: dict[str, str]) -> Extraction | None:
    letters = []
    for m in _LETTER_AFTER_CUE.finditer(final):
        letter = (m.group(1) or m.group(2) or m.group(3)).upper()
        if letter in options and not _negated(final, m.start()):
            letters.append(letter)
            hedge = _HEDGE.match(final[m.end() :])  # "Answer: A or C" names two answers
            if hedge:
                letters.append(hedge.group(1))
            named = _restated_option(final[m.end() :], options)  # "(D) Aortic dissection" where A is aortic dissection
            if named and named != letter:
                letters.append(named)
    letters += [m.group(1) for m in _BOXED.finditer(final) if m.group(1) in options]
    letters += [m.group(1) for m in _OPTION_IS_CORRECT.finditer(final) if m.group(1) in options and not _negated(final, m.start())]
    m = _CONCLUDING.search(final)
    if letters and m and not _negated(final, m.start(1)):  # "The answer is A. So B." states two answers
        letters += [x for x in m.groups() if x and x in options]
    found = _decide(letters, "answer_statement")
    if found:
        return found
    return _decide(_text_after_cue(final, options), "answer_statement_text")


def _rule_bare(final: str, options: dict[str, str]) -> Extraction | None:
    m = _BARE.match(final.rstrip("."))
    if m and m.group(1) in options:
        return Extraction(m.group(1), "ok", "bare_letter")
    m = _LEADING.match(final)
    if m and m.group(1) in options:
        expected = _norm(options[m.group(1)])
        if expected and _norm(m.group(2)).startswith(expected):
            return Extraction(m.group(1), "ok", "leading_letter")
    m = _CONCLUDING.search(final)
    if m and not _negated(final, m.start(1)):
        letters = [x for x in m.groups() if x]
        if all(x in options for x in letters):
            return _decide(letters, "concluding_letter")
    m = _LEADING_WORD.match(final)
    if m:
        word = m.group(1).lower()
        hits = [k for k, v in options.items() if _norm(v) == word]
        if len(hits) == 1:
            return Extraction(hits[0], "ok", "leading_word")
    return None


def _rule_mentions(final: str, options: dict[str, str]) -> Extraction | None:
    letters = [m.group(1) for m in _OPTION_MENTION.finditer(final) if m.group(1) in options and not _negated(final, m.start())]
    return _decide(letters, "option_mention")


def _rule_option_text(final: str, options: dict[str, str]) -> Extraction | None:
    text = f" {_norm(final)} "
    hits = {k: _norm(v) for k, v in options.items() if len(_norm(v)) > 5 and f" {_norm(v)} " in text}
    # An option whose text lies inside another hit's text ("hypertension" in "pulmonary hypertension") is not a separate hit.
    hits = {k: v for k, v in hits.items() if not any(v != w and v in w for w in hits.values())}
    return _decide(sorted(hits), "option_text")


def extract_answer(text: str, options: dict[str, str], fmt: str | None = None) -> Extraction:
    """Extract the chosen option letter from generated text; see the module docstring for the rules.

    >>> extract_answer("<think>Maybe D?</think>\\nAnswer: not D. The correct answer is C.", {"C": "x", "D": "y"})
    Extraction(letter='C', status='ok', method='answer_statement')
    """
    if not options:
        raise ValueError("extract_answer needs the item's options (letter -> text)")
    parts = [p for p in map(_clean, answer_parts(text or "", fmt)) if p]
    for rules in ((_rule_statements, _rule_bare), (_rule_mentions, _rule_option_text)):
        for part in parts:
            for rule in rules:
                found = rule(part, options)
                if found is not None:
                    return found
    return Extraction(None, "unparseable", None)


def answer_parts(text: str, fmt: str | None) -> list[str]:
    """Where the answer is read, in order: the final part; for ``plain`` output, its paragraphs from the last.

    Plain output has no marker between reasoning and answer, and the answer paragraph is not always
    the last one ("The answer is (C) ...\\n\\nPericarditis would show a rub."): an answer statement in
    any paragraph outranks a mere mention, and the later of two paragraphs that answer wins.

    >>> answer_parts("Some reasoning.\\n\\nThe answer is C.\\n\\nWhy: ...", "plain")
    ['Why: ...', 'The answer is C.', 'Some reasoning.']
    """
    reasoning, final = split_reasoning(text, fmt)
    if fmt == "plain" and reasoning and not has_reasoning_markers(text):
        return [p for p in reversed(text.strip().split("\n\n")) if p.strip()]
    return [final]
