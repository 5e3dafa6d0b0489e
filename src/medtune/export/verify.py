"""Prove a GGUF behaves like the merged HF model it came from.

Protocol (stated in every report): for each fixed prompt (resources/prompts/export_verify.yaml,
rendered with the model's chat template, generation prompt on) both models decode greedily
for ``n_tokens`` tokens without stopping at EOS.
- ``exact_prompts``: prompts whose free-running GGUF tokens equal the HF tokens exactly.
- ``agreement``: teacher-forced top-1 agreement: the HF greedy sequence is fed to llama.cpp
  and we count positions where llama.cpp's argmax equals HF's next token. Unlike free
  running, one early flip does not turn every later token into a "disagreement".
- ``ppl_hf`` / ``ppl_gguf``: perplexity of the fixed conversation (HF token ids fed to both).
- tokenizer and chat-template round trip: the conversation rendered by the HF tokenizer vs
  rendered by the GGUF's embedded template (llama-cpp-python's Jinja2 formatter) and
  tokenized by llama.cpp must give identical ids.
Pass criteria: F32/F16: every prompt exact; BF16/Q8_0: agreement >= 0.90; K-quants: reported only.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..utils.paths import resource_path
from .common import ExportError, require_llama_cpp

MIN_AGREEMENT = {"F32": 1.0, "F16": 1.0, "BF16": 0.9, "Q8_0": 0.9}
EXACT_TYPES = ("F32", "F16")


def load_verify_set() -> dict[str, Any]:
    return yaml.safe_load(resource_path("prompts", "export_verify.yaml").read_text(encoding="utf-8"))


@dataclass
class Reference:
    """What the HF model did on the verify set; computed once, compared with every GGUF."""

    prompt_ids: list[list[int]]
    greedy: list[list[int]]
    conv_ids: list[int]
    nll_hf: float
    tokenizer: Any


def _hf_greedy(model, ids: list[int], n: int) -> list[int]:
    import torch

    out: list[int] = []
    with torch.no_grad():
        res = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            nxt = int(res.logits[0, -1].argmax())
            out.append(nxt)
            res = model(torch.tensor([[nxt]]), past_key_values=res.past_key_values, use_cache=True)
    return out


def _mean_nll(logits: np.ndarray, ids: list[int]) -> float:
    """Mean next-token negative log-likelihood; logits[i] predicts ids[i + 1]."""
    x = logits[: len(ids) - 1].astype(np.float64)
    x = x - x.max(axis=1, keepdims=True)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(ids) - 1), ids[1:]].mean())


def hf_reference(merged_dir: str | Path, n_tokens: int = 32) -> Reference:
    """Load the merged model in fp32 on CPU and record its greedy tokens and conversation NLL."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged_dir = Path(merged_dir)
    tok = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    vs = load_verify_set()
    prompt_ids = []
    for p in vs["prompts"]:
        msgs = [{"role": "system", "content": vs["system"]}, {"role": "user", "content": p}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tok(text, add_special_tokens=False)["input_ids"])
    greedy = [_hf_greedy(model, ids, n_tokens) for ids in prompt_ids]
    conv_text = tok.apply_chat_template(vs["conversation"], tokenize=False)
    conv_ids = tok(conv_text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([conv_ids])).logits[0].numpy()
    return Reference(prompt_ids, greedy, conv_ids, _mean_nll(logits, conv_ids), tok)


def _open_llama(path: Path, n_ctx: int):
    llama_cpp = require_llama_cpp()
    return llama_cpp.Llama(str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=llama_threads(), seed=0)


def llama_threads() -> int:
    """Half the cores (at most 8): llama.cpp's spinning thread barriers collapse when oversubscribed
    (measured here: 2 threads on a busy 2-core box ran 10x slower per token than 1)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _gguf_greedy(llm, ids: list[int], n: int) -> list[int]:
    llm.reset()
    llm.eval(ids)
    out: list[int] = []
    for _ in range(n):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out


def _teacher_forced(llm, ids: list[int], target: list[int]) -> int:
    """Positions where llama.cpp's argmax equals the HF greedy token, given the HF prefix."""
    llm.reset()
    llm.eval(ids + target[:-1])
    preds = np.argmax(llm.scores[len(ids) - 1 : len(ids) - 1 + len(target)], axis=1)
    return int((preds == np.asarray(target)).sum())


def _template_roundtrip(llm, ref: Reference) -> dict[str, Any]:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return {"chat_template_roundtrip": False, "tokenizer_roundtrip": False, "why": "GGUF has no tokenizer.chat_template"}
    tok = ref.tokenizer
    conv = load_verify_set()["conversation"]
    fmt = Jinja2ChatFormatter(template, eos_token=tok.eos_token or "", bos_token=tok.bos_token or "",
                              add_generation_prompt=False)
    text = fmt(messages=conv).prompt
    add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"
    gguf_ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
    hf_text = tok.apply_chat_template(conv, tokenize=False)
    hf_plain = tok(hf_text)["input_ids"]  # with the tokenizer's own add-special rules
    return {"chat_template_roundtrip": gguf_ids == hf_plain,
            "tokenizer_roundtrip": llm.tokenize(hf_text.encode("utf-8"), add_bos=add_bos, special=True) == hf_plain}


def compare_gguf(path: str | Path, ref: Reference) -> dict[str, Any]:
    """Compare one GGUF file against the HF reference; returns the verify row for reports."""
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such GGUF file")
    n = len(ref.greedy[0])
    longest = max(len(ids) for ids in ref.prompt_ids) + n
    llm = _open_llama(path, n_ctx=max(512, longest + 8, len(ref.conv_ids) + 8))
    try:
        qtype = _file_type_name(llm)
        exact = agree = prefix = 0
        for ids, target in zip(ref.prompt_ids, ref.greedy):
            got = _gguf_greedy(llm, ids, n)
            exact += got == target
            prefix += next((i for i, (a, b) in enumerate(zip(got, target)) if a != b), n)
            # identical free-running tokens mean every teacher-forced step agrees too; skip the second pass
            agree += n if got == target else _teacher_forced(llm, ids, target)
        llm.reset()
        llm.eval(ref.conv_ids)
        nll = _mean_nll(np.array(llm.scores[: len(ref.conv_ids)]), ref.conv_ids)
        row = {"gguf": str(path), "type": qtype, "bytes": path.stat().st_size, "prompts": len(ref.greedy),
               "n_tokens": n, "exact_prompts": exact, "prefix_agreement": round(prefix / (n * len(ref.greedy)), 4),
               "agreement": round(agree / (n * len(ref.greedy)), 4), "ppl_hf": round(math.exp(ref.nll_hf), 4),
               "ppl_gguf": round(math.exp(nll), 4)}
        row["ppl_delta"] = round(row["ppl_gguf"] - row["ppl_hf"], 4)
        row.update(_template_roundtrip(llm, ref))
    finally:
        llm.close()
    row["passed"] = _passed(row)
    return row


def _file_type_name(llm) -> str:
    import gguf

    ftype = int(llm.metadata.get("general.file_type", -1))
    try:
        return gguf.LlamaFileType(ftype).name.replace("MOSTLY_", "").replace("ALL_", "")
    except ValueError:
        return f"ftype{ftype}"


def _passed(row: dict[str, Any]) -> bool | None:
    """True/False against the criteria above; None (reported only) for K-quants."""
    if not (row.get("chat_template_roundtrip") and row.get("tokenizer_roundtrip")):
        return False
    t = row["type"]
    if t in EXACT_TYPES:
        return row["exact_prompts"] == row["prompts"]
    if t in MIN_AGREEMENT:
        return row["agreement"] >= MIN_AGREEMENT[t]
    return None


def verify_ggufs(paths: list[str | Path], against: str | Path, n_tokens: int = 32) -> list[dict[str, Any]]:
    """Verify several GGUFs against one merged HF folder (the HF side runs once)."""
    ref = hf_reference(against, n_tokens)
    return [compare_gguf(p, ref) for p in paths]
