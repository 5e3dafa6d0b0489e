"""The llama.cpp backend: a GGUF file on parallel slots (``llama_slots.SlotEngine``)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from ...config.sections.serve import DEFAULT_CONTEXT_CAP as DEFAULT_CONTEXT
from ...security.integrity import verify_model_file
from ..identity import ModelIdentity
from .base import BackendError, EngineBackend, Prompt
from .llama_slots import ScoreJob, SlotEngine
from .text import ByteDetokenizer, render_chat_template

log = logging.getLogger("medtune.serve")


class _TokenizerAdapter:
    """``tokenizer(text, add_special_tokens=False)["input_ids"]``, the call eval's loglik code makes."""

    def __init__(self, engine: SlotEngine):
        self.engine = engine

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.engine.tokenize(text)}


class LlamaCppBackend(EngineBackend):
    name = "llamacpp"

    def __init__(self, gguf: Path, *, served_name: str, slots: int, context_length: int | None,
                 threads: int | None, reasoning_format: str):
        from llama_cpp._internals import LlamaModel  # noqa: F401  (fail early with an ImportError)

        self.gguf = gguf
        self.engine = SlotEngine(str(gguf), slots=slots, n_ctx=context_length, threads=threads, default_ctx=DEFAULT_CONTEXT)
        n_ctx = self.engine.n_ctx_seq
        meta = self.engine.model.metadata()
        self.template = meta.get("tokenizer.chat_template")
        from ...eval.identity import (
            gguf_system_prompt,  # eval's reader: the file is asked as eval asks it
        )
        from ...models.source import gguf_reasoning_format

        fmt = gguf_reasoning_format(gguf) if reasoning_format == "auto" else reasoning_format  # eval's reader too

        super().__init__(served_name=served_name, context_length=n_ctx, parallel=slots,
                         reasoning_format=fmt, trained_system_prompt=gguf_system_prompt(gguf))
        model = self.engine.model
        self.bos = model.token_get_text(model.token_bos()) if model.token_bos() >= 0 else ""
        self.eos = model.token_get_text(model.token_eos()) if model.token_eos() >= 0 else ""
        self.add_bos = model.add_bos_token()
        self.run_id = meta.get("medtune.run_id")

    async def close(self) -> None:
        await super().close()
        self.engine.close()  # the llama.cpp context and model memory

    def render(self, prompt: Prompt) -> str:
        if prompt.messages is None:
            return prompt.text or ""
        if not self.template:
            raise BackendError(f"{self.gguf.name} has no chat template (tokenizer.chat_template); "
                               "use /v1/completions with a formatted prompt", 400, "no_chat_template")
        return render_chat_template(self.template, prompt.messages, bos_token=self.bos, eos_token=self.eos)

    def encode(self, text: str) -> list[int]:
        return self.engine.tokenize(text, add_bos=self.add_bos and not (self.bos and text.startswith(self.bos)))

    def detokenizer(self) -> ByteDetokenizer:
        return ByteDetokenizer(self.engine.piece)

    def token_bytes(self, token: int) -> bytes:
        return self.engine.piece(token)

    async def score_options(self, context: str, options: list[str]) -> list[float]:
        """Summed log-probabilities of each option after ``context``, tokenized as eval's loglik protocol does."""
        from ...eval.loglik import _encode_pair

        loop = asyncio.get_running_loop()
        futures = []
        for option in options:
            ctx, cont = _encode_pair(_TokenizerAdapter(self.engine), context, option)
            future = loop.create_future()

            def done(value: float | None, error: str | None, f: asyncio.Future = future) -> None:
                loop.call_soon_threadsafe(lambda: f.done() or f.set_result((value, error)))

            self.engine.submit(ScoreJob(tokens=ctx + cont, start=len(ctx), done=done))
            futures.append(future)
        results = await asyncio.gather(*futures)
        if any(v is None for v, _ in results):
            raise BackendError(f"option scoring failed: {next(e for v, e in results if v is None)}", 503)
        return [v for v, _ in results]


def build_llamacpp(path: str, settings: Any) -> tuple[LlamaCppBackend, ModelIdentity]:
    gguf = Path(path)
    if not gguf.is_file():
        raise BackendError(f"GGUF file not found: {gguf}", 500)
    # before the weights are loaded: a file that differs from its export manifest is never served
    integrity = verify_model_file(gguf)
    log.info("model file %s: sha256 %s (%s)", gguf, integrity.sha256, {
        "sha256": f"matches {integrity.manifest}", "size": f"size matches {integrity.manifest}, which records no digest",
        "no manifest": "no export_summary.json beside it to check against"}[integrity.checked])
    served = settings.served_name or gguf.stem
    backend = LlamaCppBackend(gguf, served_name=served, slots=settings.slots, context_length=settings.context_length,
                              threads=settings.threads, reasoning_format=settings.reasoning_format)
    return backend, ModelIdentity(served, "llamacpp", str(gguf), integrity.sha256, backend.run_id,
                                  {str(gguf): integrity.sha256})
