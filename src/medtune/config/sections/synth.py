from typing import Literal

from pydantic import Field, model_validator

from .base import CommaList, Section

# How a demo answer orders its reasoning lines (medtune.synth.demo.REASONING_ORDERS explains both).
ReasoningOrder = Literal["findings_first", "conclusion_first"]


class TeacherSection(Section):
    """Where the teacher and verifier live and how hard to try (no ``url``: no teacher)."""

    url: str | None = Field(None, description="OpenAI-compatible base URL of the teacher, e.g. http://127.0.0.1:8080/v1.")
    model: str | None = Field(None, description="Teacher model name at that endpoint.")
    key_env: str = Field("MEDTUNE_TEACHER_API_KEY", description="Environment variable holding the API key.")
    verifier_url: str | None = Field(None, description="Verifier base URL (default: the teacher's).")
    verifier_model: str | None = Field(None, description="Verifier model (default: the teacher's).")
    max_refine: int = Field(2, ge=0, description="Refinements after a disagreeing verdict before an item is rejected.")
    concurrency: int = Field(4, ge=1, description="Teacher requests in flight at once.")
    max_retries: int = Field(4, ge=0, description="Retries per request on errors or malformed JSON (exponential backoff).")
    backoff_s: float = Field(1.0, ge=0, description="First backoff delay; doubles each retry.")
    timeout_s: float = Field(60.0, gt=0, description="Timeout of one teacher request in seconds.")
    temperature: float = Field(0.3, ge=0, description="Sampling temperature of the teacher.")


class SynthSection(Section):
    n: int = Field(1000, ge=1, description="Number of cases to generate (each gives one record per task).")
    seed: int = Field(0, description="Random seed; the same seed gives byte-identical output.")
    style: Literal["cases", "demo"] = Field(
        "cases", description="cases = full vignettes with vitals, labs and imaging (records, cases and a dataset card); "
        "demo = short records of each case's key findings (~150 tokens) for CPU demos such as the quickstart.")
    specialties: CommaList = Field(default_factory=list, description="Restrict to these specialties (empty = all).")
    heldout_cases: int = Field(0, ge=0, description="Extra cases from seed + 1 (new patients) written as lettered MCQ to "
                               "heldout.jsonl; `medtune run` evaluates on them besides eval.benchmarks.")
    tasks: CommaList = Field(
        default_factory=lambda: ["diagnosis", "mcq", "management", "open"],
        description="Task types to emit from each case: diagnosis (open most-likely diagnosis), mcq (diagnosis MCQ), "
        "management (next best step MCQ), open (diagnosis, workup and first-line management), treatment (most "
        "appropriate treatment MCQ), mechanism (underlying mechanism MCQ).",
    )
    direct_share: float = Field(
        0.0, ge=0.0, le=1.0, description="Style demo: the share of lettered multiple-choice records followed by a "
        "twin answered without reasoning (\"The answer is (B) ...\" alone), so the model also answers when asked for "
        "the letter directly, as the loglik protocol's chat style asks.")
    reasoning_order: ReasoningOrder = Field(
        "findings_first", description="Style demo: the order of each answer's reasoning. findings_first = \"Key findings: "
        "...\", then \"Conclusion: these findings point to X.\" and the options walk; conclusion_first = the conclusion "
        "and the walk first, then the key findings that support it (a small model that copies a long case into its "
        "findings then still states its diagnosis and letter; the findings are a justification, not a derivation).")
    compact: bool = Field(False, description="Write each case in its short form (the same facts and draws, about a third "
                          "fewer tokens per record), for CPU training budgets; style cases only (with style demo it is "
                          "refused: demo records are shorter still).")
    kb_dir: str | None = Field(None, description="Extra knowledge-base folder with user conditions.")
    teacher: TeacherSection = Field(default_factory=TeacherSection,
                                    description="Optional teacher LLM that rewrites and verifies the reasoning.")
    bias_variants: bool = Field(False, description="Add bias-probe copies (sex, age band, ethnicity) of demographic-neutral cases.")

    @model_validator(mode="after")
    def _direct_share_is_demo_only(self) -> "SynthSection":
        if self.direct_share and self.style != "demo":
            raise ValueError("synth.direct_share writes twins of the demo style's lettered items: set synth.style: demo, "
                             "or drop direct_share")
        if self.reasoning_order != "findings_first" and self.style != "demo":
            raise ValueError("synth.reasoning_order orders the demo style's reasoning lines: set synth.style: demo, "
                             "or drop reasoning_order")
        return self
