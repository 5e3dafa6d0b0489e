from pydantic import Field

from .base import Section


class SynthSection(Section):
    n: int = Field(1000, ge=1, description="Number of cases to generate.")
    seed: int = Field(0, description="Random seed; the same seed gives byte-identical output.")
    specialties: list[str] = Field(default_factory=list, description="Restrict to these specialties (empty = all).")
    tasks: list[str] = Field(
        default_factory=lambda: ["diagnosis", "mcq", "management", "open"],
        description="Task types to emit from each case.",
    )
    kb_dir: str | None = Field(None, description="Extra knowledge-base folder with user conditions.")
    teacher_url: str | None = Field(None, description="OpenAI-compatible base URL of an optional teacher LLM.")
    teacher_model: str | None = Field(None, description="Model name at the teacher endpoint.")
    teacher_key_env: str = Field("MEDTUNE_TEACHER_API_KEY", description="Environment variable holding the teacher's API key.")
    teacher_verifier_url: str | None = Field(None, description="OpenAI-compatible base URL of the verifier (default: the teacher's).")
    teacher_verifier_model: str | None = Field(None, description="Verifier model name (default: the teacher model).")
    teacher_max_refine: int = Field(2, ge=0, description="Refinements after a disagreeing verdict before an item is rejected.")
    teacher_concurrency: int = Field(4, ge=1, description="Teacher requests in flight at once.")
    teacher_max_retries: int = Field(4, ge=0, description="Retries per teacher request on errors or malformed JSON (exponential backoff).")
    teacher_timeout_s: float = Field(60.0, gt=0, description="Timeout of one teacher request in seconds.")
    bias_variants: bool = Field(False, description="Add bias-probe copies (sex, age band, ethnicity) of demographic-neutral cases.")
