"""Tokenizer metadata for GGUF: vocab, token types, merges, special ids, add-BOS rules, chat template.

llama.cpp re-implements the tokenizer from this metadata, so every field must
describe what the HF tokenizer actually does (we measure add-BOS/EOS by encoding
a string rather than trusting config flags), and the pre-tokenizer name must
select the same split regex llama.cpp-side. ``verify`` checks the result by
tokenizing the same text both ways.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .common import ExportError

# HF pre-tokenizer regexes -> llama.cpp pre-tokenizer names (llama-vocab.cpp selects its
# split regex by this name). Matched on the Split pattern found in tokenizer.json.
LLAMA3_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_PATTERN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
SPLIT_PATTERNS = {LLAMA3_PATTERN: "llama-bpe", QWEN2_PATTERN: "qwen2"}


def _pre_tokenizer_steps(pre: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not pre:
        return []
    if pre.get("type") == "Sequence":
        return list(pre.get("pretokenizers", []))
    return [pre]


def detect_pre_tokenizer(tokenizer_json: dict[str, Any], where: Path) -> str:
    """Name of llama.cpp's pre-tokenizer equivalent to this HF byte-level BPE pre-tokenizer.

    >>> detect_pre_tokenizer({"pre_tokenizer": {"type": "ByteLevel", "use_regex": True}}, Path("t"))
    'gpt-2'
    >>> detect_pre_tokenizer({"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
    ...     {"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}]}}, Path("t"))
    'smollm'
    """
    steps = _pre_tokenizer_steps(tokenizer_json.get("pre_tokenizer"))
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"  # GPT-2's own regex, which HF's ByteLevel(use_regex=True) applies
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # GPT-2 regex after splitting every digit (SmolLM/SmolLM2)
    splits = [s for s in steps if s.get("type") == "Split"]
    if len(splits) == 1 and kinds[-1] == "ByteLevel" and not steps[-1].get("use_regex", True):
        pattern = (splits[0].get("pattern") or {}).get("Regex")
        if pattern in SPLIT_PATTERNS:
            return SPLIT_PATTERNS[pattern]
    raise ExportError(
        f"{where}: pre-tokenizer {kinds} is not one llama.cpp is known to reproduce "
        "(supported: GPT-2 byte-level, SmolLM digits+byte-level, Llama 3, Qwen2); "
        "converting it would silently change tokenization"
    )


def _added_token_type(info: Any) -> int:
    import gguf

    return int(gguf.TokenType.CONTROL if info.special else gguf.TokenType.USER_DEFINED)


def _measured_add_special(tok) -> tuple[bool, bool]:
    """Does encoding plain text add BOS / EOS? (tokenizer_config flags are often stale)."""
    ids = tok("x")["input_ids"]
    add_bos = bool(ids) and tok.bos_token_id is not None and ids[0] == tok.bos_token_id
    add_eos = len(ids) > 1 and tok.eos_token_id is not None and ids[-1] == tok.eos_token_id
    return add_bos, add_eos


def write_vocab(writer, model_dir: Path, n_vocab: int) -> dict[str, Any]:
    """Add byte-level BPE tokenizer metadata to ``writer``; return a summary for the export report."""
    import gguf
    from transformers import AutoTokenizer

    tj_path = model_dir / "tokenizer.json"
    if not tj_path.is_file():
        raise ExportError(f"{model_dir}: no tokenizer.json; save the tokenizer with a fast (tokenizers) backend")
    tj = json.loads(tj_path.read_text(encoding="utf-8"))
    model = tj.get("model", {})
    if model.get("type") != "BPE" or model.get("byte_fallback") or (tj.get("decoder") or {}).get("type") != "ByteLevel":
        raise ExportError(
            f"{tj_path}: only byte-level BPE tokenizers (GPT-2 style: SmolLM2, Llama 3, Qwen2) are converted; "
            f"found model={model.get('type')} byte_fallback={model.get('byte_fallback')} "
            f"decoder={(tj.get('decoder') or {}).get('type')}"
        )
    pre = detect_pre_tokenizer(tj, tj_path)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if len(tok) > n_vocab:
        raise ExportError(f"{model_dir}: tokenizer has {len(tok)} tokens but the embedding has only {n_vocab} rows")
    id_to_token = {i: t for t, i in tok.get_vocab().items()}
    added = tok.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in id_to_token:  # embedding rows beyond the tokenizer (padding to a multiple of 64 etc.)
            tokens.append(f"[PAD{i}]")
            types.append(int(gguf.TokenType.UNUSED))
        elif i in added:
            tokens.append(added[i].content)
            types.append(_added_token_type(added[i]))
        else:
            tokens.append(id_to_token[i])
            types.append(int(gguf.TokenType.NORMAL))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(model_dir, load_merges=True, n_vocab=n_vocab)
    special.chat_template = None  # written below from the tokenizer itself (chat_template.jinja or config)
    special.add_special_token = {}
    for kind in ("bos", "eos", "unk", "pad"):
        tid = getattr(tok, f"{kind}_token_id", None)
        if tid is not None:
            special.special_token_ids[kind] = tid
    special.add_to_gguf(writer, quiet=True)
    add_bos, add_eos = _measured_add_special(tok)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(add_eos)
    if not getattr(tok, "chat_template", None):
        raise ExportError(f"{model_dir}: the tokenizer has no chat template; GGUF users would get a wrong prompt format")
    writer.add_chat_template(tok.chat_template)
    return {"pre": pre, "n_tokens": len(tok), "n_merges": len(special.merges), "add_bos": add_bos,
            "add_eos": add_eos, "special": dict(special.special_token_ids)}
