"""Ollama Modelfile: ChatML translated to a Go template exactly; untranslatable templates fall back clearly."""

from __future__ import annotations

import pytest

from medtune import DISCLAIMER
from medtune.export.common import Provenance
from medtune.export.ollama import TemplateNotTranslatable, build_modelfile, compose, derive_pieces

CHATML_GO = (
    '{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}'
    '{{ if eq .Role "system" }}<|im_start|>system\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n'
    '{{ else if eq .Role "assistant" }}<|im_start|>assistant\n{{ .Content }}<|im_end|>\n'
    '{{ end }}{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant\n{{ end }}{{ end }}'
)


def test_chatml_modelfile(tiny_tokenizer):
    text, has_template = build_modelfile("medtune-x-q8_0.gguf", tiny_tokenizer, add_bos=False,
                                         prov=Provenance(base_model="smollm2-135m", run_id="x"))
    assert has_template
    assert "FROM ./medtune-x-q8_0.gguf\n" in text
    assert f'TEMPLATE """{CHATML_GO}"""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    system = text.split('SYSTEM """', 1)[1].split('"""', 1)[0]
    assert DISCLAIMER in system


def test_pieces_recompose_the_jinja_rendering(tiny_tokenizer):
    """The Go template's semantics (compose) equal the HF Jinja rendering on a new conversation."""
    pieces = derive_pieces(tiny_tokenizer)
    conv = [{"role": "system", "content": "Be careful."}, {"role": "user", "content": "Chest pain?"},
            {"role": "assistant", "content": "ECG first."}, {"role": "user", "content": "Then?"}]
    for gen in (True, False):
        assert compose(pieces, conv, gen) == tiny_tokenizer.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)


SMOL_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are SmolLM<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def test_smollm2_default_system_template(tiny_tokenizer):
    """SmolLM2's template injects a default system turn only when none is given; Ollama always sends SYSTEM."""
    tiny_tokenizer = _with_template(tiny_tokenizer, SMOL_TEMPLATE)
    text, has_template = build_modelfile("m.gguf", tiny_tokenizer, False, Provenance())
    assert has_template and CHATML_GO in text


def _system(modelfile: str) -> str:
    return modelfile.split('SYSTEM """', 1)[1].split('"""', 1)[0]


def test_system_is_the_trained_system_turn_plus_the_disclaimer(tiny_tokenizer):
    """SYSTEM never makes up a prompt the model did not train on: the run's own, else the system turn its template
    writes by itself (what a run without one trained with), followed by the disclaimer; the disclaimer alone when
    the model trained with no system turn at all."""
    trained, _ = build_modelfile("m.gguf", tiny_tokenizer, False, Provenance(system_prompt="You are MedBot."))
    assert _system(trained) == f"You are MedBot.\n\n{DISCLAIMER}"
    none, _ = build_modelfile("m.gguf", tiny_tokenizer, False, Provenance())  # ChatML: no default system turn
    assert _system(none) == DISCLAIMER and "medical reasoning assistant" not in none
    smol = _with_template(tiny_tokenizer, SMOL_TEMPLATE)
    default, _ = build_modelfile("m.gguf", smol, False, Provenance())
    assert _system(default) == f"You are SmolLM\n\n{DISCLAIMER}"
    own, _ = build_modelfile("m.gguf", smol, False, Provenance(system_prompt="You are MedBot."))
    assert _system(own) == f"You are MedBot.\n\n{DISCLAIMER}"


def test_llama3_style_head_dropped_when_runtime_adds_bos(tiny_tokenizer):
    tok = _with_template(tiny_tokenizer, (
        "{{ bos_token }}{% for m in messages %}{{ '<|start|>' + m['role'] + '<|sep|>\n\n' + m['content'] + '<|eot|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start|>assistant<|sep|>\n\n' }}{% endif %}"))
    tok.bos_token = "<|endoftext|>"
    pieces = derive_pieces(tok)
    assert pieces.head == "<|endoftext|>" and pieces.roles["user"][0] == "<|start|>user<|sep|>\n\n"
    with_bos, _ = build_modelfile("m.gguf", tok, add_bos=True, prov=Provenance())
    without_bos, _ = build_modelfile("m.gguf", tok, add_bos=False, prov=Provenance())
    assert 'TEMPLATE """{{ range' in with_bos and 'TEMPLATE """<|endoftext|>{{ range' in without_bos


def test_untranslatable_template(tiny_tokenizer):
    tok = _with_template(tiny_tokenizer, (
        # Mistral-style: no system turn at all, [INST] wrapping (system text would be lost)
        "{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
        "{% elif m['role'] == 'assistant' %}{{ m['content'] + '</s>' }}{% endif %}{% endfor %}"))
    with pytest.raises(TemplateNotTranslatable):
        build_modelfile("m.gguf", tok, False, Provenance(), strict=True)
    text, has_template = build_modelfile("m.gguf", tok, False, Provenance())
    assert not has_template and "TEMPLATE" not in text.replace("# TEMPLATE omitted", "")
    assert "tokenizer.chat_template" in text and DISCLAIMER in text


def _with_template(tok, template: str):
    import copy

    tok = copy.deepcopy(tok)
    tok.chat_template = template
    return tok


def test_modelfile_type_is_the_preference_not_verification():
    """pipeline's docstring said the Modelfile used "the smallest verified-kind file"; it uses a fixed preference
    (K-quants first, which verification reports without judging), and now says so."""
    from medtune.export import pipeline

    assert pipeline.modelfile_type({"f16": 1, "q8_0": 2, "q4_k_m": 3}) == "q4_k_m"  # not the judged q8_0
    assert pipeline.modelfile_type({"q8_0": 1, "q6_k": 2}) == "q8_0"  # the order, not size
    assert pipeline.modelfile_type({"f32": 1}) == "f32"
    assert "verified-kind" not in pipeline.__doc__ and "not chosen by verification" in pipeline.__doc__
