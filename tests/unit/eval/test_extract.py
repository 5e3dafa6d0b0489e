"""Strict answer extraction on realistic hand-written model outputs, traps included."""

from __future__ import annotations

import pytest

from medtune.eval.extract import extract_answer

DX = {"A": "Aortic dissection", "B": "Acute pericarditis", "C": "Pulmonary embolism", "D": "Tension pneumothorax"}
HTN = {"A": "Hypertension", "B": "Pulmonary hypertension", "C": "Hypotension", "D": "Portal hypertension"}
YNM = {"A": "yes", "B": "no", "C": "maybe"}
FIVE = {"A": "Metformin", "B": "Insulin glargine", "C": "Glipizide", "D": "Sitagliptin", "E": "Empagliflozin"}

# (output, options, reasoning format, expected letter or None, expected status)
CASES = [
    # --- plain answer statements ---
    ("The answer is (C).", DX, None, "C", "ok"),
    ("The answer is C.", DX, None, "C", "ok"),
    ("Answer: C", DX, None, "C", "ok"),
    ("Answer: (c)", DX, None, "C", "ok"),
    ("ANSWER: D", DX, None, "D", "ok"),
    ("Final answer: B", DX, None, "B", "ok"),
    ("**Final Answer: B**", DX, None, "B", "ok"),
    ("The correct answer is **(A) Aortic dissection**.", DX, None, "A", "ok"),
    ("The best answer is D) Tension pneumothorax.", DX, None, "D", "ok"),
    ("The correct option is C — pulmonary embolism.", DX, None, "C", "ok"),
    ("So the answer would be B.", DX, None, "B", "ok"),
    ("I would choose C.", DX, None, "C", "ok"),
    ("I'd go with option C.", DX, None, "C", "ok"),
    ("Option C is correct.", DX, None, "C", "ok"),
    ("Option C is the best choice here.", DX, None, "C", "ok"),
    ("Therefore, the final answer is $\\boxed{D}$.", DX, None, "D", "ok"),
    ("\\boxed{A}", DX, None, "A", "ok"),
    ("`Answer: B`", DX, None, "B", "ok"),
    ("### Answer: C", DX, None, "C", "ok"),
    ("The answer is E, empagliflozin, given the heart failure.", FIVE, None, "E", "ok"),
    # --- bare letters ---
    ("C", DX, None, "C", "ok"),
    ("(B)", DX, None, "B", "ok"),
    ("D.", DX, None, "D", "ok"),
    ("**A**", DX, None, "A", "ok"),
    ("C. Pulmonary embolism", DX, None, "C", "ok"),
    ("B) Acute pericarditis", DX, None, "B", "ok"),
    # --- option text ---
    ("The most likely diagnosis is pulmonary embolism.", DX, None, "C", "ok"),
    ("This presentation is classic for tension pneumothorax; decompress immediately.", DX, None, "D", "ok"),
    ("The answer is aortic dissection.", DX, None, "A", "ok"),
    ("The patient most likely has portal hypertension.", HTN, None, "D", "ok"),
    ("Findings point to pulmonary hypertension.", HTN, None, "B", "ok"),
    ("Start insulin glargine.", FIVE, None, "B", "ok"),
    # --- yes / no / maybe (PubMedQA in cot) ---
    ("Answer: yes", YNM, None, "A", "ok"),
    ("The answer is no.", YNM, None, "B", "ok"),
    ("Final answer: Maybe.", YNM, None, "C", "ok"),
    ("There is no clear evidence either way.", YNM, None, None, "unparseable"),
    ("yes", YNM, None, "A", "ok"),  # the option's own word is the answer a human reads
    ("Yes.", YNM, None, "A", "ok"),
    ("No, the trial was underpowered to show a difference.", YNM, None, "B", "ok"),
    ("Maybe; the evidence is mixed.", YNM, None, "C", "ok"),
    ("No evidence either way was found.", YNM, None, None, "unparseable"),  # "No" opening a sentence
    ("Yes or no, it is hard to say.", YNM, None, None, "unparseable"),
    ("Yesterday's trial said yes.", YNM, None, None, "unparseable"),
    # --- lowercase letters after a cue, only where no word follows ---
    ("Answer: c", DX, None, "C", "ok"),
    ("the answer is b.", DX, None, "B", "ok"),
    ("Final answer: d\nThe rub and the ECG fit.", DX, None, "D", "ok"),
    ("The answer is a pulmonary embolism.", DX, None, "C", "ok"),  # "a" is the article; the text names C
    ("answer: a 45-year-old needs a CT first", DX, None, None, "unparseable"),
    # --- a short concluding sentence after the reasoning ---
    ("The friction rub and diffuse ST elevation fit pericarditis. So B.", DX, None, "B", "ok"),
    ("Equal pulses, normal mediastinum; hypoxia after a long flight. Thus, (C).", DX, None, "C", "ok"),
    ("Therefore D", DX, None, "D", "ok"),
    ("Both fit the pain. So A or C.", DX, None, None, "conflicting"),
    ("So B is unlikely; this is a pulmonary embolism.", DX, None, "C", "ok"),  # "So B" mid-text is not a conclusion
    ("The answer is A. So B.", DX, None, None, "conflicting"),  # two answers, however stated
    ("The answer is B. So B.", DX, None, "B", "ok"),
    ("So E.", DX, None, None, "unparseable"),  # not an option
    # --- reasoning formats: only the final part counts ---
    ("## Thinking\n\nA is unlikely given equal pulses. B would show diffuse ST elevation.\n\n## Final Response\n\nThe answer is (C) Pulmonary embolism.", DX, "sections", "C", "ok"),
    ("<think>\nOption A? No. Option B? The answer is B maybe... no, D fits.\n</think>\n\nAnswer: D", DX, "think", "D", "ok"),
    ("<think>The answer is (A).</think>\nThe answer is (C).", DX, "think", "C", "ok"),
    ("## Thinking\nI think the answer is A.\n## Final Response\nB", DX, "sections", "B", "ok"),
    ("<think>\nlong reasoning about A, B and C\n</think>\n\n", DX, "think", None, "unparseable"),
    # reasoning that never closes was cut off (max_new_tokens): a letter weighed in it is not an answer
    ("<think>\nThe answer is C.", DX, "think", None, "unparseable"),
    ("<think>\n... so the answer is (A). Hmm, but let me reconsider the", DX, "think", None, "unparseable"),
    ("## Thinking\n\nThe answer would be A at first glance, but wait", DX, "sections", None, "unparseable"),
    ("<think>\nThe answer is C.", DX, None, None, "unparseable"),
    ("Some reasoning.\n\nThe answer is (B) Acute pericarditis.", DX, "plain", "B", "ok"),
    # plain output: an answer statement in any paragraph outranks mentions in later ones; the later answer wins
    ("The answer is (C) Pulmonary embolism.\n\nPericarditis would present with a friction rub.", DX, "plain", "C", "ok"),
    ("The answer is C.\n\nExplanation: option A (aortic dissection) is unlikely with equal pulses.", DX, "plain", "C", "ok"),
    ("The answer is (C) Pulmonary embolism.\n\nThis patient has pleuritic pain after a long flight.", DX, "plain", "C", "ok"),
    ("C\n\nAortic dissection would show unequal pulses.", DX, "plain", "C", "ok"),
    ("I first thought the answer is A.\n\nOn reflection, the answer is (C).", DX, "plain", "C", "ok"),
    ("Aortic dissection is unlikely.\n\nThe most likely diagnosis is pulmonary embolism.", DX, "plain", "C", "ok"),
    ("Equal pulses and a clear film.\n\nI am not sure.", DX, "plain", None, "unparseable"),
    # every answer cue is read, not only the first
    ("Whether the answer is yes depends on the subgroup; overall, the answer is no.", YNM, None, None, "conflicting"),
    ("The answer is not straightforward from the abstract alone. Final answer: no", YNM, None, "B", "ok"),
    ("The answer is based on the trial results. Answer: yes.", YNM, None, "A", "ok"),
    # a letter's restatement is its own sentence part, not the next sentence about another option
    ("The answer is (C). Tension pneumothorax is excluded by the normal x-ray.", DX, None, "C", "ok"),
    ("The answer is C.\nAortic dissection would present with tearing pain.", DX, None, "C", "ok"),
    ("Answer: C. Acute pericarditis is less likely.", DX, None, "C", "ok"),
    ("The answer is C. Aortic dissection.", DX, None, None, "conflicting"),
    ("The answer is C - aortic dissection.", DX, None, None, "conflicting"),
    # "answer is:" is a cue
    ("The answer is: C", DX, None, "C", "ok"),
    ("The correct answer is: (C).", DX, None, "C", "ok"),
    ("The answer would be: D", DX, None, "D", "ok"),
    # --- traps: other letters mentioned ---
    ("A is wrong because pulses are equal. B doesn't fit. The answer is C.", DX, None, "C", "ok"),
    ("Option A is ruled out by the normal mediastinum; the answer is D.", DX, None, "D", "ok"),
    ("Vitamin B12 deficiency is unlikely here. Answer: C", DX, None, "C", "ok"),
    # --- traps: negation ---
    ("The answer is not A. The answer is C.", DX, None, "C", "ok"),
    ("Answer: not D", DX, None, None, "unparseable"),
    ("It is not option B.", DX, None, None, "unparseable"),
    ("Not option A; I choose B.", DX, None, "B", "ok"),
    ("We can rule out option A, so option C.", DX, None, "C", "ok"),
    # --- traps: "A." starting a sentence, lowercase a in words ---
    ("A. 45-year-old man like this needs imaging first.", DX, None, None, "unparseable"),
    ("A patient with this presentation has a pulmonary embolism.", DX, None, "C", "ok"),
    ("A CT angiogram would confirm it.", DX, None, None, "unparseable"),
    ("The answer is a rare condition that needs a CT.", DX, None, None, "unparseable"),
    ("Answer: Acute pericarditis", DX, None, "B", "ok"),  # "Acute" is not the letter A; the text names B
    ("I am a doctor and this is a tricky case.", DX, None, None, "unparseable"),
    ("As a rule, D-dimer is sensitive.", DX, None, None, "unparseable"),
    # --- traps: two answers ---
    ("Answer: A or C", DX, None, None, "conflicting"),
    ("The answer is B and D.", DX, None, None, "conflicting"),
    ("The answer is (A). On reflection, the answer is (C).", DX, None, None, "conflicting"),
    ("Either option A or option D.", DX, None, None, "conflicting"),
    ("It could be aortic dissection or pulmonary embolism.", DX, None, None, "conflicting"),
    ("Answer: C. The answer is C.", DX, None, "C", "ok"),  # repeated, same letter
    # --- letters that are not options ---
    ("The answer is E.", DX, None, None, "unparseable"),
    ("Answer: F", FIVE, None, None, "unparseable"),
    # --- a letter and another option's text: two answers; its own text (or part of it) is one ---
    ("The answer is (D) Aortic dissection.", DX, None, None, "conflicting"),
    ("## Final Response\n\nThe answer is (A) Aortic dissection.", DX, "sections", "A", "ok"),
    ("Answer: (c) pulmonary embolism", DX, None, "C", "ok"),
    ("The answer is (B) pericarditis.", DX, None, "B", "ok"),
    ("The answer is (B) Pulmonary hypertension.", HTN, None, "B", "ok"),
    ("The answer is (A) Pulmonary hypertension.", HTN, None, None, "conflicting"),
    ("The answer is A. No other option fits.", YNM, None, "A", "ok"),
    # --- empty / noise ---
    ("", DX, None, None, "unparseable"),
    ("I don't know.", DX, None, None, "unparseable"),
    ("Please consult a physician.", DX, None, None, "unparseable"),
]


def test_at_least_sixty_cases():
    assert len(CASES) >= 60


@pytest.mark.parametrize(("text", "options", "fmt", "letter", "status"), CASES, ids=[c[0][:40] for c in CASES])
def test_extract(text, options, fmt, letter, status):
    got = extract_answer(text, options, fmt)
    assert (got.letter, got.status) == (letter, status), got


def test_options_are_required():
    with pytest.raises(ValueError, match="options"):
        extract_answer("Answer: A", {})
