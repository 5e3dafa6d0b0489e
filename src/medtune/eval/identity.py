"""What an evaluation's numbers are a function of, known before a model is loaded.

A prediction store (``eval/store.py``) records a fingerprint built here; resuming into a folder
whose fingerprint differs is refused, so a base model's rows can never be reported as a tuned
model's. The fingerprint holds:

* ``model``: sha256 over the model's files (weights, config, tokenizer; for a training run the
  base's files and the adapter's), or the endpoint URL and served model name; for transformers the
  dtype the weights compute in (bf16 and fp32 rows of the same model are not mixed either);
* ``prompt``: the chat template (sha256 of its text), system prompt, reasoning format, and a
  sha256 of medtune's own rendering of a fixed probe item (catches a changed prompt layout);
* ``protocol`` and ``decoding`` (max_new_tokens, temperature, num_samples, seed, top_p -- cot only);
* ``benchmark``: sha256 of its source file(s) (or of the records given), and of its declaration.

Fields that do not shape a protocol's numbers are left out of it (decoding for loglik; the chat
prompt for harness-style loglik), so changing them does not refuse a resume.

File hashes are cached by path, size and mtime (``utils.hashcache.cached_sha256``, in
``$MEDTUNE_HOME/file-hashes.json``): a 16 GB model is read once, not at every evaluation.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..data.records import Answer, Record
from ..utils.hashcache import cached_sha256
from ..utils.io import sha256_text

SCHEMA = 1
SKIP_SUFFIXES = (".md", ".png", ".jpg", ".lock", ".gitattributes")
# Top-level files only: HF snapshots, medtune runs and save_pretrained folders are flat.
PROBE = Record.create(source="probe", task="mcq", question="Which organ pumps blood?", context="A probe item.",
                      options={"A": "Heart", "B": "Liver"}, answer=Answer(letter="A"))


def folder_digest(folder: Path) -> str:
    """sha256 over (name, sha256) of a model folder's top-level files (docs and locks excluded)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and not p.name.endswith(SKIP_SUFFIXES) and p.name != "COMPLETE")
    return sha256_text(json.dumps([[p.name, cached_sha256(p)] for p in files]))


def _digest(target: Path) -> str:
    return cached_sha256(target) if target.is_file() else folder_digest(target)


@dataclass(frozen=True)
class EvalModel:
    """A model as evaluation sees it: identity and the prompt it is asked with (nothing loaded)."""

    spec: str
    backend: str
    identity: str  # "sha256:..." of the files, or "endpoint URL model NAME"
    chat_template_sha256: str | None
    reasoning_format: str
    system_prompt: str | None
    prompt_source: str  # where reasoning format / system prompt came from, for the summary
    run_dir: str | None = None
    dtype: str | None = None  # transformers: the dtype the forward computes in (None: inside the GGUF / server)


def _run_parts(run: Path) -> tuple[Path, Path, Any, str]:
    """(base folder, adapter-or-model folder, tokenizer, the base's default reasoning format) of a training
    run, as ``load_trained`` resolves them."""
    from transformers import AutoTokenizer

    from ..models.load import load_tokenizer
    from ..models.source import ensure_local, resolve_source
    from ..train.load import adapter_base, read_manifest

    manifest = read_manifest(run)
    if (run / "model").is_dir():
        source = resolve_source(str(run / "model"))
        return run / "model", run / "model", load_tokenizer(source), source.reasoning_format
    source = resolve_source(adapter_base(run, manifest))
    base = ensure_local(source)
    tok = AutoTokenizer.from_pretrained(str(run / "adapter"))
    if not getattr(tok, "chat_template", None):
        tok.chat_template = load_tokenizer(source).chat_template
    return base, run / "adapter", tok, source.reasoning_format


def _template_sha(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    return sha256_text(template if isinstance(template, str) else json.dumps(template, sort_keys=True)) if template else None


def trained_system_prompt(spec: str | Path) -> tuple[str | None, str]:
    """The system prompt the model at ``spec`` was trained with, and where it was read.

    A training run's manifest (``train.manifest.training_prompt``), a merged export's provenance
    (``medtune_export.json``), a medtune GGUF's ``medtune.system_prompt`` metadata; ``(None, "none")`` for
    any other model (a Hub model, an endpoint). Eval asks a model with it and so does serve's
    ``/v1/analyze_case``: one model, one prompt, whichever form of it is loaded.
    """
    from ..export.common import PROVENANCE_FILE, read_provenance
    from ..train.manifest import training_prompt

    path = Path(spec)
    if (path / "manifest.json").is_file():
        return training_prompt(path)["system_prompt"] or None, "training run manifest"
    if (path / PROVENANCE_FILE).is_file():
        return read_provenance(path).system_prompt or None, "merged export provenance"
    if path.suffix == ".gguf" and path.is_file():
        return gguf_system_prompt(path), "GGUF metadata"
    return None, "none"


def gguf_system_prompt(path: str | Path) -> str | None:
    """A medtune GGUF's trained system prompt (``medtune.system_prompt``); None without one."""
    from ..models.source import GGUF_SYSTEM_PROMPT, gguf_string

    return gguf_string(path, GGUF_SYSTEM_PROMPT)


def describe_model(spec: str, *, backend: str = "transformers", endpoint: str | None = None,
                   reasoning_format: str | None = None, system_prompt: str | None = None,
                   device: str = "auto", dtype: str = "auto") -> EvalModel:
    """Identity and prompt settings of ``spec`` for evaluation; hashes files and reads a tokenizer, loads no weights.

    A training run folder (``RUN/manifest.json``) is asked with the system prompt and reasoning
    format its training used, a merged export or a medtune GGUF with its run's system prompt
    (:func:`trained_system_prompt`), unless ``reasoning_format`` / ``system_prompt`` override them
    (``system_prompt=""`` means explicitly none). ``device`` and ``dtype`` (config ``model.dtype``) give the
    dtype that loading will choose (``models.precision``); ``evaluate`` records the loaded backend's own.
    """
    from ..models.load import load_tokenizer, pick_device
    from ..models.precision import inference_dtype
    from ..models.source import (
        GGUF_REASONING_FORMAT,
        ensure_local,
        gguf_reasoning_format,
        gguf_string,
        resolve_source,
    )
    from ..train.manifest import training_prompt
    from .backends import BackendError

    run_dir = spec if backend == "transformers" and (Path(spec) / "manifest.json").is_file() else None
    trained = training_prompt(run_dir) if run_dir else None
    fmt_source = ("override" if reasoning_format else "training run manifest" if trained and trained["reasoning_format"]
                  else "model default")
    trained_system, found_in = trained_system_prompt(spec) if backend != "openai" else (None, "none")
    sys_source = "override" if system_prompt is not None else found_in
    if backend == "openai":
        if not endpoint:
            raise BackendError("the openai backend needs --endpoint URL (an OpenAI-compatible /v1 base URL)")
        identity, template, default_fmt = f"endpoint {endpoint} model {spec}", None, "plain"
    elif backend == "llamacpp":
        if not Path(spec).is_file():
            raise BackendError(f"GGUF file not found: {spec}")
        # the template is inside the file; a medtune GGUF records the format its run trained with
        identity, template = f"sha256:{cached_sha256(spec)}", None
        if gguf_string(spec, GGUF_REASONING_FORMAT) and fmt_source == "model default":
            fmt_source = "GGUF metadata"
        default_fmt = gguf_reasoning_format(spec)
    elif run_dir:
        base, output, tok, base_fmt = _run_parts(Path(run_dir))
        from ..train.load import read_manifest

        inits = "".join(_digest(Path(run_dir) / a) for a in read_manifest(Path(run_dir)).get("init_adapters", []))
        identity = "sha256:" + sha256_text(_digest(base) + inits + _digest(output))
        template, default_fmt = _template_sha(tok), trained["reasoning_format"] or base_fmt
    else:
        source = resolve_source(spec)
        identity = f"sha256:{_digest(ensure_local(source))}"
        template, default_fmt = _template_sha(load_tokenizer(source)), source.reasoning_format
        if source.trained_format and fmt_source == "model default":
            fmt_source = "merged export provenance"
    chosen_system = system_prompt if system_prompt is not None else trained_system
    computes = inference_dtype(pick_device(device), dtype) if backend == "transformers" else None
    return EvalModel(spec, backend, identity, template, reasoning_format or default_fmt or "plain",
                     chosen_system or None, f"reasoning format: {fmt_source}; system prompt: {sys_source}", run_dir,
                     computes)


def run_identities(run: Path) -> tuple[str, str | None]:
    """(identity of a training run's model, identity of its base or None when its base is not a folder on this disk;
    a base pinned to a Hub revision is fetched as that revision's snapshot, ``train.load.manifest_base``),
    as :func:`describe_model` computes them for the run folder and for its base: whoever collects
    evaluation summaries (the model card) matches them by these, never by a path or a folder name."""
    from ..train.load import adapter_base, read_manifest

    manifest = read_manifest(run)
    base_path = manifest.get("base_path") if (run / "model").is_dir() else adapter_base(run, manifest)
    base = f"sha256:{_digest(Path(base_path))}" if base_path and Path(base_path).exists() else None
    return describe_model(str(run)).identity, base


def describe_backend(backend: Any, system_prompt: str | None = None) -> EvalModel:
    """An EvalModel for a backend built by hand (tests, Python callers): identity = sha256 of its weights,
    or the backend's own ``identity`` string when it has no weights (custom or scripted backends).

    Hashes every parameter (seconds for small models, long for big ones); ``run_eval`` and
    ``compare_models`` use :func:`describe_model` instead, which hashes files once and caches.
    """
    fmt = getattr(backend, "reasoning_format", "plain")
    common = {"reasoning_format": fmt, "system_prompt": system_prompt or None, "prompt_source": "caller"}
    if getattr(backend, "name", "") == "openai":
        return EvalModel(backend.label, "openai", f"endpoint {backend.client.base_url} model {backend.model_name}", None, **common)
    if getattr(backend, "name", "") == "llamacpp":
        return EvalModel(backend.label, "llamacpp", f"sha256:{cached_sha256(backend.llm.model_path)}", None, **common)
    if getattr(backend, "identity", None):  # a custom backend that names what it is (no weights to hash)
        return EvalModel(getattr(backend, "label", "model"), getattr(backend, "name", "custom"), str(backend.identity), None, **common)
    if getattr(backend, "model", None) is None:
        raise ValueError(f"backend {type(backend).__name__} has no model weights to fingerprint: give it an `identity` string")
    import torch

    h = hashlib.sha256()
    for name, tensor in backend.model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return EvalModel(getattr(backend, "label", "model"), getattr(backend, "name", "transformers"),
                     f"sha256:{h.hexdigest()}", _template_sha(getattr(backend, "tokenizer", None)), **common)


def rendering_sha(model: EvalModel) -> str:
    """medtune's own layout of a fixed probe item (user turn, system prompt, reasoning scaffold, answer cue)."""
    from ..data.render import build_messages, format_assistant
    from .runners import CHAT_ANSWER_CUE

    probe = build_messages(PROBE, model.reasoning_format, model.system_prompt, with_answer=True)
    return sha256_text(json.dumps([probe, format_assistant(None, CHAT_ANSWER_CUE, model.reasoning_format)]))


@dataclass
class Decoding:
    max_new_tokens: int = 256
    temperature: float = 0.0
    num_samples: int = 1
    seed: int | None = 0
    top_p: float = 1.0  # not configurable yet: every backend decodes with the full distribution


def records_sha(records: list[Record]) -> str:
    """sha256 of records as evaluated (for records given in memory, e.g. the quickstart's held-out set)."""
    h = hashlib.sha256()
    for r in records:
        h.update(r.model_dump_json().encode())
    return h.hexdigest()


# How sampled (temperature > 0) rows are drawn: since 2026-12-05 each sample has its own generator seeded by
# (seed, prompt, k) (medtune.infer.sample_seed), no longer one global generator per batch, so rows drawn under the
# same seed before are other draws: a store of them is not resumed with new ones. Greedy rows are unaffected.
SAMPLER = "per-sample generator (seed, prompt, k)"


# What each other backend's decoding is, where it differs from what the Decoding fields say by themselves: llama.cpp
# with its own truncations and repeat penalty off (the penalty bent greedy answers too, until 2026-12-05), an
# OpenAI-compatible server sent top_p 1.0 (its own default may cut the distribution). A store decoded otherwise
# has another fingerprint, so it is never resumed into a mix.
BACKEND_SAMPLERS = {"llamacpp": "llama.cpp: top-k/top-p/min-p/typical off, no repeat penalty",
                    "openai": "top_p 1.0 sent to the server"}


def _decoding(decoding: Decoding, backend: str = "transformers") -> dict[str, Any]:
    out = asdict(decoding)
    if backend == "llamacpp":
        out["sampler"] = BACKEND_SAMPLERS[backend]
    elif decoding.temperature > 0:
        out["sampler"] = BACKEND_SAMPLERS.get(backend, SAMPLER)
    return out


def build_fingerprint(model: EvalModel, *, protocol: str, spec: Any, benchmark_sha256: str,
                      decoding: Decoding | None = None) -> dict[str, Any]:
    """The fingerprint of one (model, benchmark, protocol, settings) evaluation; see the module docstring."""
    from .. import __version__

    chat_prompt = protocol == "cot" or spec.loglik.style == "chat"
    prompt = {"chat_template_sha256": model.chat_template_sha256, "system_prompt": model.system_prompt,
              "reasoning_format": model.reasoning_format, "rendering_sha256": rendering_sha(model)} if chat_prompt else None
    return {
        "schema": SCHEMA,
        "model": {"identity": model.identity, "backend": model.backend, **({"dtype": model.dtype} if model.dtype else {})},
        "protocol": protocol,
        "prompt": prompt,
        "decoding": _decoding(decoding or Decoding(), model.backend) if protocol == "cot" else None,
        "benchmark": {"name": spec.name, "source_sha256": benchmark_sha256,
                      "declaration_sha256": sha256_text(spec.model_dump_json(exclude={"description", "provenance"}))},
        "info": {"model_spec": model.spec, "prompt_source": model.prompt_source, "medtune_version": __version__},
    }


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted field, old, new) for every identity field that differs; ``info`` (spec as typed, versions) is not identity.

    >>> fingerprint_diff({"protocol": "loglik", "decoding": None}, {"protocol": "cot", "decoding": {"seed": 0}})
    [('decoding', None, {'seed': 0}), ('protocol', 'loglik', 'cot')]
    """
    out: list[tuple[str, Any, Any]] = []
    for key in sorted(set(old) | set(new)):
        if not prefix and key == "info":
            continue
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(fingerprint_diff(a, b, f"{name}."))
        elif a != b:
            out.append((name, a, b))
    return out
