"""The knowledge-base schema: one pydantic model per YAML section (docs/knowledge-base.md).

Extra keys are forbidden, so a typo is an error, not a silently ignored field. The loader
(``kb``) and the cross-field rules (``kb_rules``) both build on this module.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1
# Physiologically possible bounds (not normal ranges): a distribution outside them is a
# unit slip (degF for degC, kPa for mmHg) or a typo.
VITAL_BOUNDS: dict[str, tuple[float, float]] = {
    "heart_rate": (20, 250), "systolic_bp": (40, 260), "diastolic_bp": (20, 160),
    "respiratory_rate": (4, 60), "temperature": (30, 43.5), "spo2": (50, 100),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AgeRange(_Strict):
    min: float = Field(description="Youngest age in years (fractional for infants).")
    max: float = Field(description="Oldest age in years.")
    peak: float = Field(description="Most common age; the engine samples a triangular distribution.")


class RiskFactor(_Strict):
    name: str = Field(min_length=1, description="Risk factor as written in the history.")
    prevalence: float = Field(description="Chance a case has it, in (0, 1].")
    note: str | None = Field(None, description="Why it matters, for KB readers; never shown in a case.")


class Epidemiology(_Strict):
    age: AgeRange = Field(description="Age range and peak in years.")
    sex: dict[Literal["male", "female"], float] = Field(description="Sex probabilities summing to 1.")
    risk_factors: list[RiskFactor] = Field(default_factory=list, description="Risk factors with prevalence.")


class Duration(_Strict):
    min: float = Field(gt=0, description="Shortest duration at presentation.")
    max: float = Field(gt=0, description="Longest duration at presentation.")
    unit: Literal["minutes", "hours", "days", "weeks", "months", "years"] = Field(description="Time unit.")


_NOTE = "Workup or interpretation note for KB readers (when a test is done, what it excludes); never shown in a case."


class Finding(_Strict):
    name: str = Field(min_length=1, description="Symptom or exam finding in clinical words.")
    probability: float = Field(description="Chance it is present, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")
    phrasings: list[str] = Field(default_factory=list, description="Other ways a case may state the finding (lay words, "
                                 "synonyms); each case shows the name or one of these.")
    note: str | None = Field(None, description=_NOTE)


class Presentation(_Strict):
    chief_complaints: list[str] = Field(min_length=1, description="Complaints in the patient's words.")
    onset: Literal["sudden", "acute", "subacute", "chronic", "insidious", "episodic"] = Field(description="Onset.")
    duration: Duration = Field(description="Duration range at presentation.")
    course: str = Field(min_length=1, description="Course of the illness in one or two sentences.")
    symptoms: list[Finding] = Field(min_length=3, description="Symptoms with probabilities.")


class VitalDist(_Strict):
    mean: float = Field(description="Mean of the normal distribution.")
    sd: float = Field(gt=0, description="Standard deviation.")
    min: float = Field(description="Lower clip.")
    max: float = Field(description="Upper clip.")


class LabRange(_Strict):
    low: float = Field(description="Lower reference limit.")
    high: float = Field(description="Upper reference limit.")


class AbnormalRange(_Strict):
    min: float = Field(description="Lowest characteristic abnormal value.")
    max: float = Field(description="Highest characteristic abnormal value.")


class Lab(_Strict):
    name: str = Field(min_length=1, description="Lab name.")
    unit: str = Field(min_length=1, description="Unit of reference and abnormal values.")
    reference: LabRange = Field(description="Normal range in this unit.")
    abnormal: AbnormalRange = Field(description="Characteristic abnormal range (sampled log-uniform).")
    probability: float = Field(description="Chance the lab is abnormal in a case, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")
    note: str | None = Field(None, description=_NOTE)


class Imaging(_Strict):
    study: str = Field(min_length=1, description="Imaging, ECG or other study.")
    finding: str = Field(min_length=1, description="Characteristic finding.")
    probability: float = Field(description="Chance the finding is present, in (0, 1].")
    discriminating: bool = Field(False, description="Separates this condition from its differentials.")
    note: str | None = Field(None, description=_NOTE)


class Differential(_Strict):
    condition: str | None = Field(None, description="Id of a KB condition.")
    name: str | None = Field(None, description="Declared name of a condition not in the KB.")
    discriminator: str = Field(min_length=1, description="The feature that tells them apart.")

    @model_validator(mode="after")
    def _one_target(self) -> Differential:
        if (self.condition is None) == (self.name is None):
            raise ValueError("give exactly one of `condition:` (a KB id) or `name:` (a declared name)")
        return self


class Diagnostics(_Strict):
    best_initial_test: str = Field(min_length=1, description="Best initial test.")
    confirmatory_test: str = Field(min_length=1, description="Confirmatory test.")


class Management(_Strict):
    treatment: str | None = Field(None, description="The single most appropriate treatment once the diagnosis is made, "
                                  "in a few words (gold answer of the treatment MCQ; distractors are the differentials' treatments).")
    first_line: list[str] = Field(min_length=1, description="First-line management.")
    next_best_step: str = Field(min_length=1, description="The next best step, in full (reasoning, write-ups, open answers).")
    next_best_step_option: str | None = Field(None, description="The next best step as the management MCQ's right option, "
                                              "as short as the wrong steps (defaults to `next_best_step`).")
    wrong_next_steps: list[str] = Field(min_length=3, description="Plausible but wrong next steps (>= 3).")
    contraindications: list[str] = Field(default_factory=list, description="Key contraindications.")

    @property
    def answer_option(self) -> str:
        """The management MCQ's right option: the short form where the KB gives one."""
        return self.next_best_step_option or self.next_best_step


class Correlation(_Strict):
    """Findings that move together with one severity drawn per case (a DKA's glucose, pH, bicarbonate and ketones)."""

    name: str = Field(min_length=1, description="What ties the items together, e.g. 'severity of the ketoacidosis'.")
    labs: list[str] = Field(default_factory=list, description="Names of this condition's labs: all abnormal or all normal "
                            "in a case, each further from its reference range as the severity rises.")
    vitals: dict[str, Literal["rises", "falls"]] = Field(default_factory=dict, description="Vitals of this condition "
                                                         "(keys of `vitals:`) that rise or fall with the same severity.")
    spread: float = Field(0.15, ge=0, le=0.5, description="How far an item may stray from the shared severity, as a "
                          "share of its range (0 = locked together).")


class Condition(_Strict):
    schema_version: Literal[1] = Field(description="KB schema version (1).")
    id: str = Field(pattern=r"^[a-z0-9_]+$", description="Condition id; equals the file stem.")
    name: str = Field(min_length=1, description="Display name, the answer text.")
    specialty: str = Field(min_length=1, description="Specialty; equals the parent folder name.")
    aliases: list[str] = Field(default_factory=list, description="Other names an answer may use.")
    icd10: str | None = Field(None, description="ICD-10 code.")
    demographic_neutral: bool = Field(False, description="Bias-probe copies are made only when true.")
    pregnancy: bool = Field(False, description="Condition of pregnancy (female 15-50 cases).")
    epidemiology: Epidemiology
    presentation: Presentation
    exam_findings: list[Finding] = Field(min_length=1, description="Exam findings.")
    vitals: dict[str, VitalDist] = Field(default_factory=dict, description="Abnormal vital distributions.")
    labs: list[Lab] = Field(default_factory=list, description="Characteristic labs.")
    imaging: list[Imaging] = Field(default_factory=list, description="Imaging, ECG and other studies.")
    differentials: list[Differential] = Field(min_length=3, description=">= 3 differentials.")
    diagnostics: Diagnostics
    management: Management
    red_flags: list[str] = Field(min_length=1, description="Red flags.")
    mechanism: str | None = Field(None, description="Underlying mechanism in one short sentence (gold answer of the "
                                  "mechanism MCQ; distractors are the differentials' mechanisms).")
    correlations: list[Correlation] = Field(default_factory=list, description="Groups of labs and vitals that agree "
                                            "with each other in a case (see docs/knowledge-base.md).")
    patient_explanation: str = Field(min_length=1, description="Plain-language explanation.")
    sources: list[str] = Field(min_length=1, description="Guidelines or textbooks (>= 1).")
