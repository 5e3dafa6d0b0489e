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
