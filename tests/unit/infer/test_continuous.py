"""Continuous batching: same greedy tokens as generate, rows refilled, buffer shifted and shrunk, exact sampling."""

from __future__ import annotations

import pytest
import torch
from tiny import lively

from medtune.infer import continuous, generate_texts
from medtune.infer.continuous import ContinuousBatcher, supports_continuous, token_picker
from medtune.infer.static import generate_static

QUESTIONS = [
    "Chest pain?",
    "A 58-year-old man presents with crushing chest pain radiating to the left arm and diaphoresis. Diagnosis?",
    "A 24-year-old woman has fever, dysuria and flank pain. Next test?",
    "Headache.",
    "A 70-year-old woman with sudden painless loss of vision in one eye. Most likely cause?",
    "A child with a barking cough and inspiratory stridor. Treatment?",
    "Fatigue, weight gain and cold intolerance: which test first?",
]


@pytest.fixture()
def tok(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def _ids(tok) -> list[list[int]]:
    texts = [tok.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
             for q in QUESTIONS]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _one_at_a_time(model, ids, max_new: int, eos: int, pad: int) -> list[list[int]]:
    out = []
    for p in ids:
        with torch.inference_mode():  # an explicit mask: pad == <|im_end|> appears inside the chat prompt
            gen = model.generate(torch.tensor([p]), attention_mask=torch.ones(1, len(p), dtype=torch.long),
                                 max_new_tokens=max_new, do_sample=False, eos_token_id=eos, pad_token_id=pad)
        new = gen[0, len(p):].tolist()
        out.append(new[: new.index(eos)] if eos in new else new)
    return out


def _stop_token(model, ids, max_new: int, pad: int) -> int:  # pad = the tokenizer's end-of-sequence id
    """A token the model emits at different steps for different prompts: stopping at it ends rows at different times."""
    free = _one_at_a_time(model, ids, max_new, eos=pad, pad=pad)
    first = {}
    for seq in free:
        for t in set(seq):
            first.setdefault(t, set()).add(seq.index(t))
    spread = {t: pos for t, pos in first.items() if len(pos) >= 3 and min(pos) >= 1}
    assert spread, "the random model should repeat some token at varying steps"
    return max(spread, key=lambda t: len(spread[t]))


def test_greedy_tokens_equal_generate_with_refills_shifts_and_shrinking(tiny_model, tok, monkeypatch):
    model = lively(tiny_model)
    ids, max_new, pad = _ids(tok), 16, tok.pad_token_id
    stop = _stop_token(model, ids, max_new, pad)
    expected = _one_at_a_time(model, ids, max_new, stop, pad)
    assert len({len(e) for e in expected}) >= 3  # answers end at different steps

    monkeypatch.setattr(continuous, "SLACK_COLUMNS", 1)  # a full buffer every few steps: shift_left is exercised
    events: list[tuple[str, tuple[int, int]]] = []
    shift, select = continuous.KVRows.shift_left, continuous.KVRows.select
    monkeypatch.setattr(continuous.KVRows, "shift_left", lambda s, c: (events.append(("shift", (c, 0))), shift(s, c))[1])
    monkeypatch.setattr(continuous.KVRows, "select", lambda s, r: (events.append(("select", (len(r), 0))), select(s, r))[1])
    hook = model.register_forward_pre_hook(
        lambda _m, _a, kw: events.append(("forward", tuple(kw["input_ids"].shape))), with_kwargs=True)
    try:
        got = ContinuousBatcher(model, ids, max_new_tokens=max_new, batch_size=3, pick=token_picker(0.0, 1.0),
                                eos_ids={stop}, pad_id=pad).run()
    finally:
        hook.remove()
    assert got == expected

    forwards = [shape for kind, shape in events if kind == "forward"]
    first_decode = next(i for i, s in enumerate(forwards) if s[1] == 1)
    assert any(s[1] > 1 for s in forwards[first_decode:])  # prompts prefilled while others were decoding
    assert max(s[0] for s in forwards if s[1] == 1) == 3  # never more rows than batch_size
    assert any(kind == "shift" and shape[0] > 0 for kind, shape in events)
    assert any(kind == "select" for kind, _ in events)  # the batch shrank once the queue was empty


@pytest.mark.parametrize("attention", ["sdpa", "eager"])  # a boolean mask; an additive float mask
def test_generate_texts_matches_static_generate(tiny_model, tok, attention):
    model = lively(tiny_model)
    model.set_attn_implementation(attention)
    assert model.config._attn_implementation == attention
    prompts = [tok.decode(i) for i in _ids(tok)]
    kw = {"max_new_tokens": 10, "batch_size": 4}
    assert generate_texts(model, tok, prompts, **kw) == generate_static(model, tok, prompts, **kw)


def test_static_generate_ignores_the_checkpoints_generation_extras(tiny_model, tok):
    """A checkpoint's generation_config extras (repetition penalty, no_repeat_ngram_size) are applied by neither
    path: the fixed-batch fallback decodes exactly as continuous batching does."""
    model = lively(tiny_model)
    prompts = [tok.decode(i) for i in _ids(tok)]
    kw = {"max_new_tokens": 12, "batch_size": 4}
    plain = generate_texts(model, tok, prompts, **kw)
    model.generation_config.repetition_penalty, model.generation_config.no_repeat_ngram_size = 1.5, 1
    try:
        assert generate_static(model, tok, prompts, **kw) == plain == generate_texts(model, tok, prompts, **kw)
    finally:
        model.generation_config.repetition_penalty, model.generation_config.no_repeat_ngram_size = 1.0, 0


def test_adapter_model_matches_its_own_generate(tiny_model, tok):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(lively(tiny_model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                          init_lora_weights=False))
    model.eval()
    ids = _ids(tok)
    expected = _one_at_a_time(model, ids, 8, tok.eos_token_id, tok.pad_token_id)
    with model.disable_adapter():
        base = _one_at_a_time(model, ids, 8, tok.eos_token_id, tok.pad_token_id)
    assert expected != base  # the adapter changes the answers
    got = ContinuousBatcher(model, ids, max_new_tokens=8, batch_size=4, pick=token_picker(0.0, 1.0),
                            eos_ids={tok.eos_token_id}, pad_id=tok.pad_token_id).run()
    assert got == expected


def test_sliding_window_model_takes_the_static_path(tok):
    """A window smaller than the prompts: continuous batching would attend too far, so generate runs instead."""
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    cfg = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, sliding_window=8,
                        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    model = lively(MistralForCausalLM(cfg)).eval()
    assert not supports_continuous(model)
    ids = _ids(tok)[:3]
    expected = [tok.decode(e, skip_special_tokens=True).strip()
                for e in _one_at_a_time(model, ids, 8, tok.eos_token_id, tok.pad_token_id)]
    assert generate_texts(model, tok, [tok.decode(i) for i in ids], max_new_tokens=8, batch_size=1) == expected


@pytest.mark.parametrize(("name", "kwargs", "ok"), [
    ("LlamaConfig", {}, True),
    ("Qwen2Config", {"use_sliding_window": False}, True),
    ("MistralConfig", {"sliding_window": None}, True),
    ("MistralConfig", {"sliding_window": 4096}, False),
    ("Gemma2Config", {}, False),
    ("Qwen3NextConfig", {}, False),
    ("MambaConfig", {}, False),
    ("RwkvConfig", {}, False),
])
def test_supports_continuous(name, kwargs, ok):
    import transformers

    config = getattr(transformers, name)(**kwargs)
    assert supports_continuous(type("M", (), {"config": config})()) is ok


def test_token_picker_applies_temperature_and_top_p():
    logits = torch.tensor([[0.0, float(torch.log(torch.tensor(3.0)))]]).repeat(20000, 1)
    torch.manual_seed(0)
    share = token_picker(1.0, 1.0)(logits).float().mean().item()
    assert abs(share - 0.75) < 0.02  # p = 3 / (1 + 3)
    share_t2 = token_picker(2.0, 1.0)(logits).float().mean().item()
    assert abs(share_t2 - 3**0.5 / (1 + 3**0.5)) < 0.02  # logits / 2
    assert token_picker(1.0, 0.5)(logits).eq(1).all()  # the top token alone holds more than half the mass
    assert token_picker(0.0, 1.0)(logits).eq(1).all()


@pytest.mark.parametrize("engine", [generate_texts, generate_static])
def test_model_generation_config_extras_do_not_change_the_protocol(tiny_model, tok, engine):
    model = lively(tiny_model)
    ids = _ids(tok)[:3]
    prompts = [tok.decode(i) for i in ids]
    before = engine(model, tok, prompts, max_new_tokens=12, batch_size=3)
    model.generation_config.repetition_penalty = 3.0
    # the penalty would change these answers if it were applied (plain generate applies it)
    penalized = _one_at_a_time(model, ids, 12, tok.eos_token_id, tok.pad_token_id)
    assert [tok.decode(t, skip_special_tokens=True).strip() for t in penalized] != before
    assert engine(model, tok, prompts, max_new_tokens=12, batch_size=3) == before

