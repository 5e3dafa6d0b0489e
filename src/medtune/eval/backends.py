"""Inference backends for evaluation: transformers, llama.cpp (GGUF) and OpenAI-compatible endpoints.

All three take the same chat messages (``medtune.data.render.build_messages``), so a
model is asked the same question whichever engine runs it. Only transformers scores
choice log-likelihoods (the ``loglik`` protocol); the other two run ``cot``.
An endpoint is how evaluation scales to big GPUs: point ``--endpoint`` at vLLM or a
llama.cpp server and the rest of the pipeline is unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..data.records import Record
from ..data.render import build_messages, render_prompt
from ..utils.extras import install_hint
from .loglik import ChoiceScores, score_choices


class BackendError(RuntimeError):
    """A backend that cannot be built or cannot do what was asked (e.g. loglik over an endpoint)."""


class TransformersBackend:
    """A transformers model (base, base + adapter, or merged) with batched left-padded generation."""

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, reasoning_format: str = "plain", *, batch_size: int = 8, label: str = "model"):
        self.model, self.tokenizer = model, tokenizer
        self.reasoning_format, self.batch_size, self.label = reasoning_format, batch_size, label
        self.model.eval()
        # Recorded in eval summaries: the dtype the forward computes in (that of the embedding weights).
        self.dtype = str(model.get_input_embeddings().weight.dtype).removeprefix("torch.")

    def prompt(self, record: Record, system_prompt: str | None = None) -> str:
        return render_prompt(self.tokenizer, record, self.reasoning_format, system_prompt)

    def generate(self, records: Sequence[Record], *, max_new_tokens: int, temperature: float = 0.0,
                 num_samples: int = 1, seed: int | None = 0, system_prompt: str | None = None) -> list[list[str]]:
        """num_samples completions per record; each prompt is prefilled once and shared by its samples.

        ``batch_size`` counts generated rows: a batch holds ``max(1, batch_size // num_samples)`` records.
        """
        from ..infer import generate_texts

        prompts = [self.prompt(r, system_prompt) for r in records]
        texts = generate_texts(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens,
                               batch_size=self.batch_size, temperature=temperature, seed=seed,
                               num_samples=num_samples)
        return [texts[i * num_samples : (i + 1) * num_samples] for i in range(len(records))]

    def score_choices(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[ChoiceScores]:
        return score_choices(self.model, self.tokenizer, requests, batch_size=self.batch_size)



def chat_prompt_json(record: Record, reasoning_format: str, system_prompt: str | None = None) -> str:
    """The prompt a chat-completion backend is sent, as JSON messages (stored per prediction)."""
    return json.dumps(build_messages(record, reasoning_format, system_prompt, with_answer=False), ensure_ascii=False)

class LlamaCppBackend:
    """A GGUF file through llama-cpp-python; one prompt at a time (llama.cpp's Python API is not batched)."""

    name = "llamacpp"

    def __init__(self, gguf_path: str | Path, reasoning_format: str = "plain", *, n_ctx: int = 2048,
                 n_threads: int | None = None, label: str | None = None):
        try:
            from llama_cpp import Llama
        except ImportError as e:
            raise BackendError(f"evaluating a .gguf file needs llama-cpp-python: {install_hint('llama_cpp')}") from e
        if not Path(gguf_path).is_file():
            raise BackendError(f"GGUF file not found: {gguf_path}")
        self.llm = Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_threads=n_threads, verbose=False, seed=0)
        self.reasoning_format, self.label = reasoning_format, label or Path(gguf_path).name

    def prompt(self, record: Record, system_prompt: str | None = None) -> str:
        return chat_prompt_json(record, self.reasoning_format, system_prompt)

    # llama-cpp-python's own sampler defaults (top_k 40, top_p 0.95, min_p 0.05) would cut the distribution
    # the fingerprint records as full (top_p 1.0): each truncation is set to off, as the other backends
    # sample. The repeat penalty applies to greedy decoding too, so it is pinned to none as well.
    FULL_DISTRIBUTION = {"top_k": 0, "top_p": 1.0, "min_p": 0.0, "typical_p": 1.0, "repeat_penalty": 1.0,
                         "presence_penalty": 0.0, "frequency_penalty": 0.0, "mirostat_mode": 0}

    def generate(self, records: Sequence[Record], *, max_new_tokens: int, temperature: float = 0.0,
                 num_samples: int = 1, seed: int | None = 0, system_prompt: str | None = None) -> list[list[str]]:
        out = []
        for r in records:
            msgs = build_messages(r, self.reasoning_format, system_prompt, with_answer=False)
            samples = []
            for k in range(num_samples):
                resp = self.llm.create_chat_completion(
                    messages=msgs, max_tokens=max_new_tokens, temperature=temperature,
                    seed=None if seed is None else seed + k, **self.FULL_DISTRIBUTION,
                )
                samples.append((resp["choices"][0]["message"]["content"] or "").strip())
            out.append(samples)
        return out

    def score_choices(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[ChoiceScores]:
        raise BackendError("the llamacpp backend runs the cot protocol only; use --backend transformers for loglik")


class OpenAIBackend:
    """Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, medtune serve)."""

    name = "openai"

    def __init__(self, endpoint: str, model: str, reasoning_format: str = "plain", *, api_key: str | None = None,
                 timeout: float = 120.0, client: Any = None):
        if client is None:
            try:
                from openai import OpenAI
            except ImportError as e:
                raise BackendError(f"the openai backend needs the openai client: {install_hint('openai')}") from e
            client = OpenAI(base_url=endpoint, api_key=api_key or "EMPTY", timeout=timeout)
        self.client = client
        self.model_name, self.reasoning_format, self.label = model, reasoning_format, f"{model}@{endpoint}"

    def prompt(self, record: Record, system_prompt: str | None = None) -> str:
        return chat_prompt_json(record, self.reasoning_format, system_prompt)

    def generate(self, records: Sequence[Record], *, max_new_tokens: int, temperature: float = 0.0,
                 num_samples: int = 1, seed: int | None = 0, system_prompt: str | None = None) -> list[list[str]]:
        out = []
        for r in records:
            resp = self.client.chat.completions.create(
                model=self.model_name, messages=build_messages(r, self.reasoning_format, system_prompt, with_answer=False),
                max_tokens=max_new_tokens, temperature=temperature, n=num_samples, seed=seed,
                top_p=1.0,  # explicit: a server's own default (vLLM reads the model's generation_config) may cut it
            )
            out.append([(c.message.content or "").strip() for c in resp.choices])
        return out

    def score_choices(self, requests: Sequence[tuple[str, Sequence[str]]]) -> list[ChoiceScores]:
        raise BackendError("the openai backend runs the cot protocol only; use --backend transformers for loglik")


def load_run_model(run_dir: str | Path, device: str = "auto", dtype: str = "auto") -> tuple[Any, Any, Any]:
    """(model, tokenizer, source) of a training run folder (RUN/adapter on the manifest's base), via the training stage."""
    from ..train import load_trained

    loaded = load_trained(run_dir, device=device, dtype=dtype)
    return loaded.model, loaded.tokenizer, loaded.source


def build_backend(spec: str, *, backend: str = "transformers", batch_size: int = 8, endpoint: str | None = None,
                  reasoning_format: str | None = None, device: str = "auto", dtype: str = "auto") -> Any:
    """A backend from a model spec: preset / HF id / folder / run folder (transformers), .gguf (llamacpp), name (openai).
    ``dtype`` (config ``model.dtype``) is the dtype transformers weights load in."""
    if backend == "openai":
        if not endpoint:
            raise BackendError("the openai backend needs --endpoint URL (an OpenAI-compatible /v1 base URL)")
        return OpenAIBackend(endpoint, spec, reasoning_format or "plain")
    if backend == "llamacpp":
        return LlamaCppBackend(spec, reasoning_format or "plain")
    if (Path(spec) / "manifest.json").is_file():
        model, tok, source = load_run_model(spec, device, dtype)
    else:
        from ..models.load import load_model

        loaded = load_model(spec, device=device, dtype=dtype)
        model, tok, source = loaded.model, loaded.tokenizer, loaded.source
    fmt = reasoning_format or getattr(source, "reasoning_format", None) or "plain"
    return TransformersBackend(model, tok, fmt, batch_size=batch_size, label=str(spec))
