"""Ollama Modelfile: FROM the GGUF, the chat template translated to a Go template, stops, SYSTEM.

We do not hand-map template names. We render the model's own Jinja chat template on
marker messages and cut out, per role, the text before and after the content
(``<|im_start|>user\\n`` ... ``<|im_end|>\\n`` for ChatML), plus the generation prompt.
The pieces are accepted only if they re-compose a four-turn conversation exactly as
the Jinja template renders it; then the Go template below is equivalent by
construction. Templates that are not "role prefix + content + role suffix" (date
injection, tool logic, content rewriting) raise ``TemplateNotTranslatable``; the
documented fallback is a Modelfile without TEMPLATE, so Ollama falls back to matching
the GGUF's embedded ``tokenizer.chat_template`` against its own template library.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import DISCLAIMER
from ..utils.io import atomic_write_text
from .common import ExportError, Provenance

MARK = {"system": "\x02MEDTUNE_SYSTEM\x03", "user": "\x02MEDTUNE_USER\x03",
        "assistant": "\x02MEDTUNE_ASSISTANT\x03", "user2": "\x02MEDTUNE_USER_2\x03"}
ROLES = ("system", "user", "assistant")


class TemplateNotTranslatable(ExportError):
    """The chat template cannot be expressed as per-role prefix/suffix pieces."""


@dataclass
class TemplatePieces:
    head: str
    roles: dict[str, tuple[str, str]]  # role -> (prefix, suffix)
    generation: str


def _render(tokenizer: Any, messages: list[dict[str, str]], gen: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)


def _split(block: str, marker: str, what: str) -> tuple[str, str]:
    if block.count(marker) != 1:
        raise TemplateNotTranslatable(f"chat template: the {what} message does not appear verbatim once")
    before, after = block.split(marker)
    return before, after


def _extend(longer: str, shorter: str, what: str) -> str:
    if not longer.startswith(shorter):
        raise TemplateNotTranslatable(f"chat template: adding the {what} message rewrites earlier turns")
    return longer[len(shorter):]


def derive_pieces(tokenizer: Any) -> TemplatePieces:
    """Cut the Jinja chat template into per-role prefixes/suffixes and check they re-compose it."""
    s = {"role": "system", "content": MARK["system"]}
    u = {"role": "user", "content": MARK["user"]}
    a = {"role": "assistant", "content": MARK["assistant"]}
    u2 = {"role": "user", "content": MARK["user2"]}
    r1, r2, r3 = _render(tokenizer, [s], False), _render(tokenizer, [s, u], False), _render(tokenizer, [s, u, a], False)
    before_sys, sys_post = _split(r1, MARK["system"], "system")
    user = _split(_extend(r2, r1, "user"), MARK["user"], "user")
    bos = tokenizer.bos_token or ""
    # A literal BOS before the first turn is a one-off head (Llama 3), unless BOS is also the
    # turn opener (ChatML tokenizers often set bos = <|im_start|>).
    head = bos if bos and before_sys.startswith(bos) and not user[0].startswith(bos) else ""
    roles = {
        "system": (before_sys[len(head):], sys_post),
        "user": user,
        "assistant": _split(_extend(r3, r2, "assistant"), MARK["assistant"], "assistant"),
    }
    generation = _extend(_render(tokenizer, [s, u], True), r2, "generation prompt")
    pieces = TemplatePieces(head, roles, generation)
    conv = [s, u, a, u2]
    want = _render(tokenizer, conv, True)
    if compose(pieces, conv, add_generation_prompt=True) != want:
        raise TemplateNotTranslatable("chat template: per-role pieces do not re-compose a four-turn conversation")
    return pieces


def compose(pieces: TemplatePieces, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """What the Go template produces for ``messages`` (used to check equivalence with Jinja)."""
    out = pieces.head
    for m in messages:
        pre, post = pieces.roles[m["role"]]
        out += pre + m["content"] + post
    if add_generation_prompt and messages and messages[-1]["role"] != "assistant":
        out += pieces.generation
    return out


def go_template(pieces: TemplatePieces, add_bos: bool) -> str:
    """The Go template (Ollama's text/template). No ``{{-`` trims: the pieces' newlines are content.

    The head (a literal BOS) is dropped when llama.cpp adds BOS itself, as it would be doubled.
    """
    for text in [pieces.head, pieces.generation, *[p for pair in pieces.roles.values() for p in pair]]:
        if "{{" in text or '"""' in text:
            raise TemplateNotTranslatable("chat template pieces contain '{{' or '\"\"\"', which a Modelfile cannot quote")
    head = "" if add_bos else pieces.head
    branches = []
    for i, role in enumerate(ROLES):
        pre, post = pieces.roles[role]
        kw = "if" if i == 0 else "else if"
        branches.append(f'{{{{ {kw} eq .Role "{role}" }}}}{pre}{{{{ .Content }}}}{post}')
    return (head + "{{ range $i, $_ := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
            + "".join(branches) + "{{ end }}"
            + f'{{{{ if and $last (ne .Role "assistant") }}}}{pieces.generation}{{{{ end }}}}{{{{ end }}}}')


def stop_tokens(tokenizer: Any, pieces: TemplatePieces | None) -> list[str]:
    """EOS plus the special tokens that end an assistant turn or open a new one."""
    specials = [t for t in tokenizer.all_special_tokens if t]
    found: list[str] = []
    if tokenizer.eos_token:
        found.append(tokenizer.eos_token)
    if pieces is not None:
        texts = [pieces.roles["assistant"][1], pieces.roles["user"][0], pieces.roles["system"][0]]
        for tok in sorted(set(specials) | set(tokenizer.get_added_vocab()), key=len, reverse=True):
            if tok not in found and any(tok in t for t in texts):
                found.append(tok)
    return found


def template_default_system(tokenizer: Any, pieces: TemplatePieces) -> str | None:
    """The system turn the chat template writes by itself into a conversation that has none (SmolLM2's
    "You are a helpful AI assistant named SmolLM..."). A run trained without a system prompt saw it in every
    example, but the Go template only renders the messages Ollama sends, so SYSTEM has to carry it. None when
    the template adds nothing (or something that is not a plain system turn)."""
    from jinja2 import TemplateError

    user = [{"role": "user", "content": MARK["user"]}]
    try:
        alone = _render(tokenizer, user, True)
    except TemplateError:  # a template that refuses a conversation without a system turn adds none
        return None
    start, end = pieces.head + pieces.roles["system"][0], pieces.roles["system"][1]
    if alone == compose(pieces, user, True) or not end or not alone.startswith(start):
        return None
    text = alone[len(start):].split(end, 1)[0]
    return text if compose(pieces, [{"role": "system", "content": text}, *user], True) == alone else None


def system_text(tokenizer: Any, pieces: TemplatePieces | None, prov: Provenance) -> str:
    """SYSTEM: the system turn the model was trained with (the run's prompt, else its template's own default),
    then the research-use disclaimer; the disclaimer alone when it trained with no system turn at all.

    Ollama returns the model's text as is: there is no response envelope to carry the disclaimer, as
    ``medtune serve`` has, so it goes into every conversation's context. That appended sentence is the one
    difference from the training prompt (docs/export.md, "Ollama"); no other text is made up."""
    trained = prov.system_prompt or (template_default_system(tokenizer, pieces) if pieces is not None else None)
    return f"{trained}\n\n{DISCLAIMER}" if trained else DISCLAIMER  # a paragraph of its own: the prompt may not end a sentence


def build_modelfile(gguf_name: str, tokenizer: Any, add_bos: bool, prov: Provenance, strict: bool = False,
                    num_ctx: int = 4096) -> tuple[str, bool]:
    """Modelfile text and whether a TEMPLATE was written (False = documented fallback)."""
    try:
        pieces: TemplatePieces | None = derive_pieces(tokenizer)
        template = go_template(pieces, add_bos)
    except TemplateNotTranslatable:
        if strict:
            raise
        pieces, template = None, None
    system = system_text(tokenizer, pieces, prov)
    lines = [f"# Ollama Modelfile written by medtune {prov.medtune_version}. {DISCLAIMER}",
             f"# base model: {prov.base_model}; run: {prov.run_id or 'n/a'}", f"FROM ./{gguf_name}", ""]
    if template is not None:
        lines += [f'TEMPLATE """{template}"""', ""]
    else:
        lines += ["# TEMPLATE omitted: this chat template is not a plain per-role prefix/suffix template, so",
                  "# Ollama matches the GGUF's embedded tokenizer.chat_template itself (check `ollama show --template`).", ""]
    lines += [f'PARAMETER stop "{s}"' for s in stop_tokens(tokenizer, pieces)]
    lines += [f"PARAMETER num_ctx {num_ctx}", "PARAMETER temperature 0", "", f'SYSTEM """{system}"""', ""]
    return "\n".join(lines), template is not None


def write_modelfile(out_dir: str | Path, gguf_path: str | Path, merged_dir: str | Path, prov: Provenance,
                    strict: bool = False) -> Path:
    """Write ``out_dir/Modelfile`` pointing at ``gguf_path`` (relative, so the folder can move)."""
    from transformers import AutoTokenizer

    out_dir, gguf_path = Path(out_dir), Path(gguf_path)
    tok = AutoTokenizer.from_pretrained(merged_dir)
    add_bos = bool(tok("x")["input_ids"][:1] == [tok.bos_token_id]) if tok.bos_token_id is not None else False
    text, _ = build_modelfile(gguf_path.name, tok, add_bos, prov, strict=strict)
    return atomic_write_text(out_dir / "Modelfile", text)
