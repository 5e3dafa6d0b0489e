"""The transformers backend: an HF folder, a preset or a training run, on the live continuous-batching engine."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from typing import Any

from ...config.sections.serve import DEFAULT_CONTEXT_CAP as DEFAULT_CONTEXT
from ...infer import eos_ids
from ...infer.continuous import supports_continuous
from ...infer.live import LiveBatcher
from ..identity import ModelIdentity, digest_files, run_id_of, weight_files
from .base import BackendError, EngineBackend, Prompt
from .text import PrefixDetokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte <-> printable character table, which byte-level BPE vocabularies are written in."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


def load_hf(spec: str, device: str) -> tuple[Any, Any, str, list[Path], str | None]:
    """(model, tokenizer, reasoning format, weight files, run id) of a run folder or any model spec."""
    if (Path(spec) / "manifest.json").is_file():
        from ...train import load_trained
        from ...train.load import adapter_base, read_manifest

        loaded = load_trained(spec, device=device)
        manifest = read_manifest(spec)
        files = weight_files(Path(loaded.path))
        base = manifest.get("base_path") if (Path(spec) / "model").is_dir() else adapter_base(Path(spec), manifest)
        if base and Path(base).is_dir():
            files += weight_files(Path(base))
        fmt = manifest.get("reasoning_format") or loaded.source.reasoning_format
        return loaded.model, loaded.tokenizer, fmt, files, run_id_of(Path(spec))
    from ...models.load import load_model

    loaded = load_model(spec, device=device)
    return loaded.model, loaded.tokenizer, loaded.source.reasoning_format, weight_files(Path(loaded.path)), run_id_of(Path(loaded.path))


class TransformersBackend(EngineBackend):
    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, *, served_name: str, slots: int, context_length: int | None,
                 reasoning_format: str, trained_system_prompt: str | None = None):
        if not supports_continuous(model):
            raise BackendError("this model has sliding-window or recurrent layers, which the live batching engine "
                               "does not cover; export it to GGUF (`medtune export`) and serve the .gguf, or serve "
                               "it with vLLM behind `--backend openai`", 500)
        limit = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        super().__init__(served_name=served_name, context_length=min(context_length or min(limit, DEFAULT_CONTEXT), limit),
                         parallel=slots, reasoning_format=reasoning_format, trained_system_prompt=trained_system_prompt)
        self.model, self.tokenizer = model.eval(), tokenizer
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.engine = LiveBatcher(model, max_rows=slots, eos_ids=eos_ids(model, tokenizer), pad_id=pad)
        self._score_lock = threading.Lock()
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self._byte_level = type(decoder).__name__ == "ByteLevel"

    def render(self, prompt: Prompt) -> str:
        if prompt.messages is not None:
            from ...data.render import render_messages_prompt

            return render_messages_prompt(self.tokenizer, prompt.messages)  # transformers renders in a Jinja sandbox
        return prompt.text or ""

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]  # the template carries any BOS

    def detokenizer(self) -> PrefixDetokenizer:
        return PrefixDetokenizer(self.tokenizer)

    def token_bytes(self, token: int) -> bytes:
        """The token's raw bytes (a byte-level BPE piece can hold part of a UTF-8 character)."""
        piece = self.tokenizer.convert_ids_to_tokens(token)
        if self._byte_level and isinstance(piece, str) and all(c in _BYTE_DECODER for c in piece):
            return bytes(_BYTE_DECODER[c] for c in piece)
        if isinstance(piece, str) and re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):  # sentencepiece byte fallback
            return bytes([int(piece[3:5], 16)])
        return self.tokenizer.decode([token]).encode("utf-8")

    async def score_options(self, context: str, options: list[str]) -> list[float]:
        """eval's loglik scoring (``medtune.eval.loglik.score_choices``), off the event loop."""
        from ...eval.loglik import score_choices

        def run() -> list[float]:
            with self._score_lock:
                return score_choices(self.model, self.tokenizer, [(context, options)], batch_size=len(options))[0].logprobs

        return await asyncio.to_thread(run)


def build_transformers(spec: str, settings: Any) -> tuple[TransformersBackend, ModelIdentity]:
    from ...eval.identity import (
        trained_system_prompt,  # one reader of it, eval's: the model is asked as eval asks it
    )

    model, tok, fmt, files, run_id = load_hf(spec, settings.device)
    served = settings.served_name or Path(spec).name or spec
    fmt = fmt if settings.reasoning_format == "auto" else settings.reasoning_format
    backend = TransformersBackend(model, tok, served_name=served, slots=settings.slots,
                                  context_length=settings.context_length, reasoning_format=fmt or "sections",
                                  trained_system_prompt=trained_system_prompt(spec)[0])
    sha, digests = digest_files(files) if files else (None, {})
    return backend, ModelIdentity(served, "transformers", spec, sha, run_id, digests)
