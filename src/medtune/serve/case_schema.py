"""The published schema of ``POST /v1/analyze_case``: its request body and the document it returns.

``GET /v1/analyze_case/schema`` serves :func:`analysis_json_schema` (JSON Schema 2020-12, from
these pydantic models), and every response is built by validating against the same models, so
what is published is what is returned.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .. import DISCLAIMER
from .protocol import SEED_MAX

SCHEMA_ID = "https://medtune.dev/schemas/case_analysis/v1.json"
_LETTER = re.compile(r"^[A-Z]$")


class AnalyzeCaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: str = Field(min_length=1, max_length=20_000, description="The case: history, exam, labs, imaging, in prose.")
    question: str | None = Field(None, max_length=2_000, description="What to answer (default: the most likely diagnosis).")
    options: dict[str, str] | None = Field(None, description="Lettered options, e.g. {\"A\": \"Pneumonia\", ...}; 2-26.")
    model: str | None = Field(None, description="The served model's name (optional: there is one).")
    max_tokens: int | None = Field(None, ge=16, description="Answer budget (default: the server's analyze_max_tokens).")
    samples: int | None = Field(None, ge=2, le=32, description="Open questions: samples whose agreement is the "
                                "confidence (at most the server's max_n, as for n: 422 above it).")
    seed: int | None = Field(None, ge=0, le=SEED_MAX,
                             description=f"Seed of the sampled answers (reproducible confidence), 0 to {SEED_MAX}.")
    stream: bool = Field(False, description="Server-sent events: text deltas of the answer, then the analysis.")

    @field_validator("case")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("the case text is blank")
        return v

    @field_validator("options")
    @classmethod
    def _letters(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if not 2 <= len(v) <= 26:
            raise ValueError(f"give 2-26 options, got {len(v)}")
        bad = [k for k in v if not _LETTER.match(k)]
        if bad:
            raise ValueError(f"option keys must be single capital letters A-Z, got {bad}")
        if any(not t.strip() for t in v.values()):
            raise ValueError("an option's text is blank")
        return dict(sorted(v.items()))


class ModelInfo(BaseModel):
    name: str
    backend: str
    sha256: str | None = Field(description="sha256 of the served weights (null behind an upstream endpoint).")
    run_id: str | None = Field(description="The medtune training run these weights come from, when known.")


class FinalAnswer(BaseModel):
    text: str | None = Field(description="The answer as stated (an option's text for multiple choice).")
    letter: str | None = Field(None, description="The option letter, for multiple choice.")


class DifferentialItem(BaseModel):
    rank: int = Field(ge=1)
    diagnosis: str
    letter: str | None = None
    probability: float | None = Field(None, ge=0.0, le=1.0, description="Null when the model named it without a probability.")


class Confidence(BaseModel):
    value: float | None = Field(ge=0.0, le=1.0, description="Null when no answer could be parsed.")
    method: Literal["option_loglik", "sample_agreement"] = Field(
        description="option_loglik: the normalized option probability from the model's log-likelihoods (eval's loglik "
        "protocol); sample_agreement: the share of k sampled answers that agree with the final one.")
    samples: int | None = Field(None, description="k, for sample_agreement.")
    votes: dict[str, int] | None = Field(None, description="Answers and their counts among the samples.")


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int


class CaseAnalysis(BaseModel):
    model_config = ConfigDict(json_schema_extra={"$id": SCHEMA_ID, "$schema": "https://json-schema.org/draft/2020-12/schema"})

    object: Literal["case_analysis"] = "case_analysis"
    request_id: str
    created: int
    model: ModelInfo
    question: str
    final_answer: FinalAnswer
    reasoning: str | None = Field(description="The model's reasoning before its final answer.")
    differential: list[DifferentialItem] = Field(description="Ranked, most likely first.")
    red_flags: list[str] = Field(description="Findings the model named as red flags.")
    confidence: Confidence
    needs_human_review: bool = Field(description="True when confidence is under the server's threshold, or the answer "
                                     "could not be parsed, was cut off, or disagrees with the likelihood ranking.")
    review_reasons: list[str]
    confidence_threshold: float
    raw_text: str = Field(description="The model's full text (the first sample).")
    parse_error: str | None = Field(description="Why the text did not parse into the fields above; null when it did.")
    usage: Usage
    disclaimer: str = Field(DISCLAIMER, description="medtune.DISCLAIMER: research use only, not medical advice.")


def analysis_json_schema() -> dict:
    return CaseAnalysis.model_json_schema(mode="serialization")
