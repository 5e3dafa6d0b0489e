"""The ``serve`` section: every setting of ``medtune serve``, declared once.

``medtune.serve.settings.ServeSettings`` derives from this class (it adds only the
``MEDTUNE_`` environment variables), and ``medtune serve``'s flags are built from these
fields, so a default and its help text live here and nowhere else. The security settings are
the nested ``security`` section (``MEDTUNE_SECURITY__PHI_POLICY=block``).
"""

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from .base import Section
from .security import SecuritySection

# Default tokens per sequence when context_length is not set (capped by the model's own context):
# each slot holds this much KV cache (8 slots x 2048 tokens of an 8B model: ~2 GB).
DEFAULT_CONTEXT_CAP = 2048


class ServeSection(Section):
    host: str = Field("127.0.0.1", description="Bind address (loopback by default: keep patient data on site).")
    port: int = Field(8000, ge=1, le=65535, description="Port.")
    model: str | None = Field(
        None, description="What to serve: a .gguf file, a merged HF folder, a training run folder, a preset, "
        "or (backend openai) the model name at the upstream endpoint.")
    backend: Literal["auto", "llamacpp", "transformers", "openai"] = Field(
        "auto", description="auto = llamacpp for .gguf files, transformers for folders and presets; "
        "openai = forward to an OpenAI-compatible server (vLLM, llama-server) at `endpoint`.")
    endpoint: str | None = Field(None, description="Base URL of the upstream OpenAI-compatible API (backend openai), e.g. http://127.0.0.1:8001/v1; https:// when it is on another host (plain HTTP off this host is refused).")
    upstream_key_env: str = Field("MEDTUNE_UPSTREAM_API_KEY", description="Environment variable holding the upstream API key (backend openai).")
    served_name: str | None = Field(None, description="Model name clients send and /v1/models lists (default: the file or folder name).")
    device: str = Field("auto", description="transformers backend: auto, cpu, cuda, mps.")
    slots: int = Field(8, ge=1, le=256, description="Sequences decoded together (llama.cpp parallel slots; rows of the transformers batch).")
    queue_size: int = Field(64, ge=0, description="Requests that may wait for a slot; one more is refused with 503 and Retry-After.")
    retry_after_s: int = Field(2, ge=1, description="Retry-After seconds sent with a 503 when the queue is full or the server is stopping.")
    context_length: int | None = Field(None, ge=64, description="Tokens per sequence, prompt + answer (default: the model's training context, at most 2048; each slot holds this much KV cache).")
    threads: int | None = Field(None, ge=1, description="llama.cpp CPU threads (default: all cores).")
    max_tokens_default: int = Field(512, ge=1, description="Answer budget when a request gives no max_tokens.")
    max_tokens_ceiling: int = Field(2048, ge=1, description="Larger max_tokens values are clamped to this.")
    request_timeout_s: float = Field(300.0, gt=0, description="A generation still running after this many seconds is cancelled (504).")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="On SIGTERM/SIGINT, in-flight requests may finish for this long; the rest are cancelled.")
    system_prompt: str | None = Field(None, description="System turn of /v1/analyze_case prompts (chat requests bring their own); default: the one the served model was trained with (a training run's, a merged export's, a medtune GGUF's), as eval asks it; \"\" = none.")
    reasoning_format: Literal["auto", "think", "sections", "plain"] = Field(
        "auto", description="How the served model lays out reasoning (auto = the run's, merged folder's or GGUF's recorded format, else the preset's; else plain for a GGUF, sections for other models).")
    confidence_threshold: float = Field(0.6, ge=0.0, le=1.0, description="/v1/analyze_case: below this confidence the answer is flagged needs_human_review.")
    analyze_samples: int = Field(4, ge=2, le=32, description="/v1/analyze_case without options: samples whose agreement is the confidence, when the request gives none (the operator's setting; security.max_n caps what a request asks for).")
    analyze_temperature: float = Field(0.7, gt=0.0, le=2.0, description="Sampling temperature of those samples.")
    analyze_max_tokens: int = Field(384, ge=16, description="Answer budget of /v1/analyze_case.")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Server log level (no request text is ever logged).")
    log_file: str | None = Field(None, description="Also append the server log to this file (identifiers are redacted from every line, as on the console).")
    security: SecuritySection = Field(default_factory=SecuritySection, description="API keys, limits, PHI policy, audit log, TLS and CORS (docs/security.md).")

    @field_validator("endpoint")
    @classmethod
    def _upstream_over_tls(cls, endpoint: str | None, info: ValidationInfo) -> str | None:
        """Prompts leave this host for the upstream only over TLS (security.transport.upstream_problem)."""
        if endpoint and info.data.get("backend") == "openai":
            from ...security.transport import upstream_problem

            if problem := upstream_problem(endpoint):
                raise ValueError(problem)
        return endpoint

    @model_validator(mode="after")
    def _backend_needs(self) -> "ServeSection":
        if self.backend == "openai" and not self.endpoint:
            raise ValueError("backend openai needs `endpoint` (the upstream's /v1 base URL)")
        if self.max_tokens_default > self.max_tokens_ceiling:
            raise ValueError(f"max_tokens_default ({self.max_tokens_default}) is above max_tokens_ceiling ({self.max_tokens_ceiling})")
        return self
