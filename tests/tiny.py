"""Tiny offline model + tokenizer builders for tests and benches (seconds, no network).

The tokenizer is a byte-level BPE trained on a few medical sentences, with ChatML
special tokens and the same chat template family as SmolLM2, so rendering, masking,
training, merging and export run exactly as on a real model.
"""

from __future__ import annotations

from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "A 58-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis.",
    "The most likely diagnosis is acute myocardial infarction; the best initial test is an ECG.",
    "A 24-year-old woman has fever, dysuria and flank pain; urinalysis shows white cell casts.",
    "Answer with the letter of the correct option. The answer is (A) (B) (C) (D) (E).",
    "## Thinking ## Final Response <think> </think> Key findings, differential, conclusion, red flags.",
    "Troponin, creatinine, hemoglobin, sodium, potassium, glucose, lactate mg/dL mmol/L g/dL.",
    "Pneumothorax, pulmonary embolism, pneumonia, asthma, COPD, sepsis, meningitis, stroke.",
    "Context: Question: Options: yes no maybe. Patient explanation: your heart muscle lacked blood.",
] * 20


def build_tiny_tokenizer(out_dir: str | Path, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(out_dir)
    return fast


def build_tiny_model_dir(out_dir: str | Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A 2-layer random Llama with the tiny tokenizer, saved as an HF folder."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    out = Path(out_dir)
    tok = build_tiny_tokenizer(out)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id).save_pretrained(out)
    return out


def lively(model, scale: float = 0.3, seed: int = 0):
    """Give a tiny model larger random weights (norms kept): greedy decoding then varies
    from token to token instead of repeating one, so generation tests can tell outputs apart."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * scale)
    return model


def build_hub_snapshot(cache: str | Path, repo_id: str, revision: str, source: str | Path, *, main: bool = False) -> Path:
    """A Hub cache snapshot ``models--Org--Name/snapshots/REVISION`` holding a copy of the folder ``source``,
    as ``huggingface_hub.snapshot_download`` leaves it (offline tests of revisions); ``main=True`` points
    ``refs/main`` at it, i.e. it is what an unpinned load gets."""
    import shutil

    repo = Path(cache) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    if main:
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return snapshot


def write_gguf_metadata(path: str | Path, strings: dict[str, str]) -> Path:
    """A GGUF file with only metadata (no tensors): enough for the readers of ``medtune.*`` keys."""
    import gguf

    w = gguf.GGUFWriter(str(path), "llama")
    for key, value in strings.items():
        w.add_string(key, value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return Path(path)
