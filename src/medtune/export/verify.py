"""Prove a GGUF behaves like the merged HF model it came from.

Protocol (stated in every report): for each fixed prompt (resources/prompts/export_verify.yaml,
rendered with the model's chat template, generation prompt on) both models decode greedily
for ``n_tokens`` tokens without stopping at EOS.
- ``exact_prompts``: prompts whose free-running GGUF tokens equal the HF tokens exactly.
- ``agreement``: teacher-forced top-1 agreement: the HF greedy sequence is fed to llama.cpp
  and we count positions where llama.cpp's argmax equals HF's next token. Unlike free
  running, one early flip does not turn every later token into a "disagreement".
- ``flips`` / ``max_flip_margin``: every step where llama.cpp's argmax g differs from HF's
  greedy token h (teacher-forced, plus the first divergence of free running), and how far HF
  preferred its token there: (z_h - z_g) / sigma, with z HF's fp32 logits at that step and
  sigma their standard deviation. A quantized file perturbs logits by a fraction of sigma, so a
  flip inside that fraction is a near-tie the quantization may break either way; a flip
  outside it is a real difference.
- ``logit_err``: max |z_gguf - z_hf| / sigma over HF's top-8 tokens at the teacher-forced steps.
- ``ppl_hf`` / ``ppl_gguf``: perplexity of the fixed conversation (HF token ids fed to both).
- tokenizer and chat-template round trip: the conversation rendered by the HF tokenizer vs
  rendered by the GGUF's embedded template (llama-cpp-python's Jinja2 formatter) and
  tokenized by llama.cpp must give identical ids.
Pass criteria (:func:`pass_rule` words them for the model card): both round trips, and no flip with
a margin above the type's ``TIE_BANDS`` entry (F32, F16, BF16, Q8_0); K-quants are reported, not
judged (``passed`` None). The reference is the merged folder as stored (``reference_dtype`` in each
row); ``medtune export`` saves merges in fp32, so it is the trained model up to fp32 arithmetic.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..utils.paths import resource_path
from .common import (
    AMX_SAFE_TYPES,
    PROVENANCE_FILE,
    ExportError,
    llama_cpp_amx_problem,
    read_provenance,
    require_llama_cpp,
)
from .merge import stored_dtype

log = logging.getLogger(__name__)

# Largest relative rounding error of one stored value, per GGUF type. llama.cpp keeps its KV
# cache in F16 and rounds matmul inputs to F16 (F16 weights) or Q8_0 (Q8_0 weights), so an F32
# file still carries F16 rounding. BF16: 8-bit mantissa. Q8_0: 8-bit integers scaled by the
# block's absmax, i.e. up to half of absmax/127 per value.
UNIT_ROUNDOFF = {"F32": 2.0**-11, "F16": 2.0**-11, "BF16": 2.0**-8, "Q8_0": 1 / 254}
# Logit error per unit of rounding (top-8 logits, in sigma; `logit_err` / UNIT_ROUNDOFF), the
# largest measured on correct conversions, rounded up: every architecture the converter supports
# built tiny, the trained tiny model with a LoRA merged in, and SmolLM2-135M (30 layers; the
# largest: F32 8.2, F16 16.8, BF16 16.9, Q8_0 68.7). Q8_0 also quantizes the activations.
ERROR_PER_ROUNDOFF = {"F32": 10.0, "F16": 20.0, "BF16": 20.0, "Q8_0": 80.0}
# A flip moves the gap z_h - z_g by at least its margin, and each logit moves by at most
# K * u: a margin up to twice that is a tie the quantization may break.
TIE_BANDS = {t: round(2 * ERROR_PER_ROUNDOFF[t] * u, 4) for t, u in UNIT_ROUNDOFF.items()}
TOP_K = 8  # logit_err is measured on HF's top-8 tokens of each step


def pass_rule() -> str:
    """What :func:`_passed` checks, in words, with the bands of ``TIE_BANDS`` (the model card states it).

    >>> "F16 <= 0.0195" in pass_rule() and "K-quants" in pass_rule()
    True
    """
    bands = ", ".join(f"{t} <= {b:g}" for t, b in TIE_BANDS.items())
    return ("both round trips (the conversation rendered by the GGUF's chat template and by HF's, tokenized by "
            "llama.cpp, gives HF's token ids) and no flip (a step where llama.cpp's argmax differs from HF's greedy "
            "token) whose margin (z_h - z_g) / sigma of HF's logits exceeds the type's tie band "
            f"({bands}); flips inside the band are near-ties the rounding may break either way, reported, not failed, "
            "so a passing file need not reproduce every prompt exactly; K-quants are reported, not judged")


def load_verify_set() -> dict[str, Any]:
    return yaml.safe_load(resource_path("prompts", "export_verify.yaml").read_text(encoding="utf-8"))


@dataclass
class Reference:
    """What the HF model did on the verify set; computed once, compared with every GGUF."""

    prompt_ids: list[list[int]]
    greedy: list[list[int]]
    greedy_logits: list[np.ndarray]  # per prompt: (n_tokens, vocab) fp32 logits each greedy token came from
    conv_ids: list[int]
    nll_hf: float
    tokenizer: Any
    dtype: str = "float32"  # what the reference folder's weights are stored in


def _hf_greedy(model, ids: list[int], n: int) -> tuple[list[int], np.ndarray]:
    """HF's greedy tokens and the logit rows they were chosen from (kept to judge flips later)."""
    import torch

    out: list[int] = []
    rows = []
    with torch.no_grad():
        res = model(torch.tensor([ids]), use_cache=True)
        for _ in range(n):
            row = res.logits[0, -1].float()
            rows.append(row.numpy().copy())
            nxt = int(row.argmax())
            out.append(nxt)
            res = model(torch.tensor([[nxt]]), past_key_values=res.past_key_values, use_cache=True)
    return out, np.stack(rows)


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
    dtype = stored_dtype(merged_dir)
    if dtype != "float32" and (merged_dir / PROVENANCE_FILE).is_file() and read_provenance(merged_dir).adapter_sha256:
        log.warning("%s: a merge stored in %s, so already rounded: the GGUFs are verified against the rounded "
                    "weights, not the trained model (`medtune export` of the run merges again in fp32)", merged_dir, dtype)
    tok = AutoTokenizer.from_pretrained(merged_dir)
    model = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    vs = load_verify_set()
    prompt_ids = []
    for p in vs["prompts"]:
        msgs = [{"role": "system", "content": vs["system"]}, {"role": "user", "content": p}]
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        prompt_ids.append(tok(text, add_special_tokens=False)["input_ids"])
    runs = [_hf_greedy(model, ids, n_tokens) for ids in prompt_ids]
    conv_text = tok.apply_chat_template(vs["conversation"], tokenize=False)
    conv_ids = tok(conv_text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([conv_ids])).logits[0].numpy()
    return Reference(prompt_ids, [r[0] for r in runs], [r[1] for r in runs], conv_ids, _mean_nll(logits, conv_ids), tok,
                     dtype)


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


def flip_margin(hf_logits: np.ndarray, hf_token: int, gguf_token: int) -> float:
    """How far HF preferred its greedy token over llama.cpp's choice, in units of its logits' std.

    >>> round(flip_margin(np.array([0.0, 2.0, 1.9, -1.0]), 1, 2), 4)
    0.0784
    """
    sigma = float(hf_logits.std()) or 1.0
    return float(hf_logits[hf_token] - hf_logits[gguf_token]) / sigma


@dataclass
class PromptResult:
    """One prompt's comparison: free running, then teacher-forced on HF's greedy tokens."""

    exact: bool
    prefix: int  # tokens before the first free-running divergence
    agree: int  # teacher-forced steps where llama.cpp's argmax is HF's token
    flip_margins: list[float]  # one per flip (teacher-forced, and the free-running divergence)
    logit_err: float


def _compare_prompt(llm, ids: list[int], target: list[int], hf_rows: np.ndarray) -> PromptResult:
    n = len(target)
    got = _gguf_greedy(llm, ids, n)
    prefix = next((i for i, (a, b) in enumerate(zip(got, target)) if a != b), n)
    # free running equals teacher forcing up to the first divergence, where HF's row is still valid
    margins = [flip_margin(hf_rows[prefix], target[prefix], got[prefix])] if prefix < n else []
    llm.reset()
    llm.eval(ids + target[:-1])
    rows = np.asarray(llm.scores[len(ids) - 1 : len(ids) - 1 + n], dtype=np.float64)
    preds = rows.argmax(axis=1)
    for t in np.flatnonzero(preds != np.asarray(target)):
        margins.append(flip_margin(hf_rows[t], target[t], int(preds[t])))
    return PromptResult(got == target, prefix, int((preds == np.asarray(target)).sum()), margins,
                        top_logit_error(rows, hf_rows))


def top_logit_error(rows: np.ndarray, hf_rows: np.ndarray, k: int = TOP_K) -> float:
    """Largest |z_gguf - z_hf| / sigma over HF's top-k tokens of each step: the logits a flip can
    involve (the far tail of the vocabulary has larger absolute errors and never wins).

    >>> hf = np.array([[4.0, 3.0, 0.0, -9.0]]); top_logit_error(hf + [[0.1, 0.0, 0.0, 5.0]], hf, k=2) < 0.05
    True
    """
    top = np.argsort(-hf_rows, axis=1)[:, :k]
    diff = np.take_along_axis(np.abs(rows - hf_rows), top, axis=1)
    sigma = hf_rows.std(axis=1, keepdims=True)
    return float((diff / np.where(sigma > 0, sigma, 1.0)).max())


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
        if qtype not in AMX_SAFE_TYPES and (problem := llama_cpp_amx_problem()):
            raise ExportError(f"{path}: cannot verify a {qtype} file here: {problem}")
        results = [_compare_prompt(llm, ids, target, rows)
                   for ids, target, rows in zip(ref.prompt_ids, ref.greedy, ref.greedy_logits)]
        llm.reset()
        llm.eval(ref.conv_ids)
        nll = _mean_nll(np.array(llm.scores[: len(ref.conv_ids)]), ref.conv_ids)
        steps = n * len(ref.greedy)
        margins = [m for r in results for m in r.flip_margins]
        row = {"gguf": str(path), "type": qtype, "bytes": path.stat().st_size, "prompts": len(ref.greedy),
               "n_tokens": n, "exact_prompts": sum(r.exact for r in results),
               "prefix_agreement": round(sum(r.prefix for r in results) / steps, 4),
               "agreement": round(sum(r.agree for r in results) / steps, 4),
               "flips": steps - sum(r.agree for r in results), "max_flip_margin": round(max(margins, default=0.0), 4),
               "tie_band": TIE_BANDS.get(qtype), "logit_err": round(max(r.logit_err for r in results), 4),
               "ppl_hf": round(math.exp(ref.nll_hf), 4), "ppl_gguf": round(math.exp(nll), 4),
               "reference_dtype": ref.dtype}
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
    """True/False against the criteria above (:func:`pass_rule`); None (reported only) for K-quants."""
    if not (row.get("chat_template_roundtrip") and row.get("tokenizer_roundtrip")):
        return False
    band = row.get("tie_band")
    if band is None:
        return None
    return row["max_flip_margin"] <= band


def verify_ggufs(paths: list[str | Path], against: str | Path, n_tokens: int = 32) -> list[dict[str, Any]]:
    """Verify several GGUFs against one merged HF folder (the HF side runs once)."""
    ref = hf_reference(against, n_tokens)
    return [compare_gguf(p, ref) for p in paths]
